"""Pure calculation of the special-outpatient benefits (BENEFITS.md): parameters and the three-layer
settlement engine. Stdlib, numpy and pandas only."""
