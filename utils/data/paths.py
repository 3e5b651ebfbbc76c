"""Where a data set's label list, images and class names are (no TensorFlow, so that light
processes such as the demo's driver can use it).

``dataset_paths`` resolves a data set split; ``split_paths(args, split)`` does it for a run
configuration.  The class-name file (``words.txt``, format: ``utils/data/labels.py``) lies beside
the train list (``dataset_class_names_file``); training keeps a copy in the run folder, which is
the one a run's later uses read (``run_class_names_file``).

Data-root conventions (``dataset_paths``)
-----------------------------------------
A data set is a label list (format: ``utils/data/labels.py``) plus an *image root*: the
directory the list's relative paths start from.

==========  ==================================  =======================================
data set    image root                          label list (``label_dir`` default)
==========  ==================================  =======================================
CUB         ``<data_dir>/CUB/images``           ``<repo>/labels/CUB/<split>.txt``
ILSVRC      ``<data_dir>/ILSVRC``               ``<repo>/labels/ILSVRC/<split>.txt``
            (paths ``train/<wnid>/x.JPEG``,
            ``val/x.JPEG``)
SYNTH       ``<data_dir>/SYNTH/images``         ``<data_dir>/SYNTH/<split>.txt``
any other   ``<data_dir>/<NAME>/images``        ``<data_dir>/<NAME>/<split>.txt``
==========  ==================================  =======================================

An explicit ``label_dir`` replaces the default: lists are then read from
``<label_dir>/<NAME>/<split>.txt``, or, when that file does not exist and
``label_dir`` is a wsolevaluation metadata folder, from its split folder
``<label_dir>/<NAME>/<train|test|val>/`` (``utils/data/metadata.py``: the evaluated
``val`` list is wsolevaluation's ``test``, ``train_fullsup`` its ``val``).
"""
import os

from utils.data.metadata import metadata_split_dir

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DEFAULT_LABEL_DIR = os.path.join(REPO_ROOT, "labels")
CLASS_NAMES_FILE = "words.txt"
REPO_LABEL_SETS = ("CUB", "ILSVRC")  # data sets whose lists ship in <repo>/labels
PREPARE_COMMANDS = {
    "CUB": "dataset/prepare_cub.sh",
    "ILSVRC": "dataset/prepare_imagenet.sh",
    "SYNTH": "python -m utils.data.synthetic --out {root}",
}


def dataset_paths(dataset_name, data_dir, label_dir=None, *, split):
    """``(label_file, image_root)`` of a data set split; see the module docstring."""
    if dataset_name == "ILSVRC":
        image_root = os.path.join(data_dir, "ILSVRC")
    else:
        image_root = os.path.join(data_dir, dataset_name, "images")
    if label_dir is None:
        label_dir = DEFAULT_LABEL_DIR if dataset_name in REPO_LABEL_SETS else data_dir
    label_file = os.path.join(label_dir, dataset_name, f"{split}.txt")
    if not os.path.isfile(label_file):   # a wsolevaluation metadata folder (utils/data/metadata.py)?
        label_file = metadata_split_dir(label_dir, dataset_name, split) or label_file
    return label_file, image_root


def split_paths(args, split):
    """``(label_file, image_root)`` of a split of a run configuration's data set
    (``args.dataset_name``, ``args.data_dir``, ``args.label_dir``)."""
    return dataset_paths(args.dataset_name, args.data_dir, args.label_dir, split=split)


def dataset_class_names_file(dataset_name, data_dir, label_dir=None):
    """The data set's class-name file (``words.txt`` beside its train list), or None without one."""
    label_file, _ = dataset_paths(dataset_name, data_dir, label_dir, split="train")
    path = os.path.join(os.path.dirname(label_file), CLASS_NAMES_FILE)
    return path if os.path.isfile(path) else None


def kept_class_names_file(log_dir):
    """Where training keeps its copy of the data set's class-name file: ``<log_dir>/words.txt``."""
    return os.path.join(log_dir, CLASS_NAMES_FILE)


def run_class_names_file(args):
    """The class-name file of a run: its own copy (``kept_class_names_file``), else its data
    set's; None without either."""
    own = kept_class_names_file(args.log_dir)
    if os.path.isfile(own):
        return own
    return dataset_class_names_file(args.dataset_name, args.data_dir, args.label_dir)


CLASS_NAME_FILES = (CLASS_NAMES_FILE, "wnids.txt")


def prepare_hint(image_root):
    """The command that prepares the data set whose image root is ``image_root``
    (``<data_dir>/<NAME>/images``, or ILSVRC's ``<data_dir>/ILSVRC``), or a generic hint; a
    relative path names the working directory it is relative to."""
    folder = os.path.normpath(image_root)
    if os.path.basename(folder) == "images":
        folder = os.path.dirname(folder)
    command = PREPARE_COMMANDS.get(os.path.basename(folder))
    hint = command.format(root=folder) if command else "the data set's preparation step (see README)"
    if not os.path.isabs(image_root):
        hint += f" ({image_root} is relative to the working directory {os.getcwd()})"
    return hint


def lists_beside(label_file):
    """The split names of the label lists in ``label_file``'s folder (class-name files left out)."""
    folder = os.path.dirname(label_file) or "."
    names = os.listdir(folder) if os.path.isdir(folder) else []
    return sorted(os.path.splitext(n)[0] for n in names if n.endswith(".txt") and n not in CLASS_NAME_FILES)
