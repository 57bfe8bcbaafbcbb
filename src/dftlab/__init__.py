"""dftlab: the helper package of the course "Why fine-tuned models write formulaically".

Data flows one way through the modules:
corpus/tinytales -> data -> models -> objectives -> train -> generate -> metrics -> study -> plots/widgets.
"""
from dftlab.models import DEFAULT_MODEL, default_model_name, load_gpt2_tokenizer, load_model

__version__ = "0.1.0"
__all__ = ["DEFAULT_MODEL", "default_model_name", "load_gpt2_tokenizer", "load_model", "__version__"]
