"""Sensors: warning rules (threshold, rate of change, no data, device offline) and the state of each rule.

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-29 09:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import kotacerdas.db

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "sensor_rules",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("thing_id", sa.Integer(), nullable=False),
        sa.Column("datastream_id", sa.Integer(), nullable=True),
        sa.Column("enabled", sa.Boolean(), server_default=sa.true(), nullable=False),
        sa.Column("category", sa.String(length=40), nullable=True),
        sa.Column("level", sa.String(length=12), nullable=True),
        sa.Column("threshold", sa.Float(), nullable=True),
        sa.Column("escalate_level", sa.String(length=12), nullable=True),
        sa.Column("escalate_threshold", sa.Float(), nullable=True),
        sa.Column("clear_level", sa.String(length=12), nullable=True),
        sa.Column("clear_threshold", sa.Float(), nullable=True),
        sa.Column("duration_minutes", sa.Integer(), nullable=True),
        sa.Column("clear_minutes", sa.Integer(), nullable=True),
        sa.Column("window_minutes", sa.Integer(), nullable=True),
        sa.Column("title", sa.String(length=200), nullable=True),
        sa.Column("instruction", sa.Text(), nullable=True),
        sa.Column("created_at", kotacerdas.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", kotacerdas.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["datastream_id"],
            ["sensor_datastreams.id"],
            name=op.f("fk_sensor_rules_datastream_id_sensor_datastreams"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["thing_id"], ["sensor_things.id"], name=op.f("fk_sensor_rules_thing_id_sensor_things"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sensor_rules")),
    )
    with op.batch_alter_table("sensor_rules", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_sensor_rules_datastream_id"), ["datastream_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_sensor_rules_thing_id"), ["thing_id"], unique=False)

    op.create_table(
        "sensor_rule_states",
        sa.Column("rule_id", sa.Integer(), nullable=False),
        sa.Column("state", sa.String(length=12), server_default="normal", nullable=False),
        sa.Column("since", kotacerdas.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("level", sa.String(length=12), nullable=True),
        sa.Column("clear_since", kotacerdas.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("event_id", sa.Integer(), nullable=True),
        sa.Column("changed_at", kotacerdas.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("problem", sa.String(length=500), nullable=True),
        sa.ForeignKeyConstraint(
            ["event_id"], ["events.id"], name=op.f("fk_sensor_rule_states_event_id_events"), ondelete="SET NULL"
        ),
        sa.ForeignKeyConstraint(
            ["rule_id"],
            ["sensor_rules.id"],
            name=op.f("fk_sensor_rule_states_rule_id_sensor_rules"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("rule_id", name=op.f("pk_sensor_rule_states")),
    )
    with op.batch_alter_table("sensor_rule_states", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_sensor_rule_states_event_id"), ["event_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("sensor_rule_states", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_sensor_rule_states_event_id"))

    op.drop_table("sensor_rule_states")
    with op.batch_alter_table("sensor_rules", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_sensor_rules_thing_id"))
        batch_op.drop_index(batch_op.f("ix_sensor_rules_datastream_id"))

    op.drop_table("sensor_rules")
