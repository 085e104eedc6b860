"""Infrastructure and facility registry: asset types, assets with geometry and condition, inspections, imports."""
