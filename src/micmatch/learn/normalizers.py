"""Old home of the learned device normalizers, kept for one release (remove it in the next).

They now live in :mod:`micmatch.learn.ratio_net` and :mod:`micmatch.learn.eq_net` (models),
:mod:`micmatch.learn.normalizer_train` (training), :mod:`micmatch.learn.normalizer` (:class:`Normalizer`: apply,
files) and :mod:`micmatch.learn.engine` (compute device).
"""

from micmatch.learn.engine import select_device
from micmatch.learn.eq_net import EQNet
from micmatch.learn.normalizer import METHODS, Normalizer, correct_file_with_model
from micmatch.learn.normalizer_train import fit_eq_net, fit_ratio_net
from micmatch.learn.ratio_net import RatioNet, default_n_fft

__all__ = ["METHODS", "EQNet", "Normalizer", "RatioNet", "correct_file_with_model", "default_n_fft", "fit_eq_net",
           "fit_ratio_net", "select_device"]
