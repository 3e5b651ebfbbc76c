"""E2Net (Chen et al., ACM MM 2021): MAE at the insertion positions plus OSE's heads."""
from models.methods import mae, ose
from models.methods.base import combine

METHOD = combine("E2Net", "MAE + OSE", (mae.METHOD, ose.METHOD), aliases=("AAE_SAE",))
