"""The offline demo (BreastMNIST, :mod:`.demo`) and the study recipes' stand-in data sets (:mod:`.standins`)."""
