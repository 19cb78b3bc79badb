"""The package's models as an i-PI PES class, for i-PI's own driver machinery:

    i-pi-py_driver -m custom -P $(python -c "import n2amd_driver.md.ipi_pes as m; print(m.__file__)") \
        -o model=si_mlff.pt,structure=init.xyz -u -a si64   (or element=Si instead of structure)
    <ffdirect name="n2amd"><pes>custom</pes><parameters>{...}</parameters></ffdirect>

Same conversions and extras as the socket driver (:mod:`.ipi_client`).
"""
from ipi.pes.dummy import Dummy_driver

from n2amd_driver.md.ipi_client import ModelEvaluator

__DRIVER_NAME__ = "n2amd"
__DRIVER_CLASS__ = "N2AMD_driver"


class N2AMD_driver(Dummy_driver):
    def __init__(self, model, structure=None, element=None, *args, **kwargs):
        self.evaluate = ModelEvaluator(model, structure, element)
        super().__init__(*args, **kwargs)

    def compute_structure(self, cell, pos):
        return self.evaluate(cell, pos)
