"""CAM (Zhou et al., CVPR 2016): the backbone and one GAP+FC head, the graph every other
method adds to.  It adds nothing, so every field of its record keeps its default."""
from models.methods.base import Method

METHOD = Method("CAM", "class activation maps of one GAP+FC head (the baseline)")
