"""dftlab: the helper package of the course "Why fine-tuned models write formulaically".

The package does three jobs, and its folders say which module does which (tests/system/test_import_graph.py checks that
imports only go down this list):

1. **The core**, what a learner studies, at the top level: distributions and losses (`distributions`, `objectives`,
   `toy`, `scoring_rules`, `temperature`), data and models (`corpus`, `tinytales`, `data`, `models`), training and
   sampling (`train`, `generate`), measuring text and models (`metrics`), and drawing (`plots`, `widgets`).
   Data flows one way: corpus/tinytales -> data -> models -> objectives -> train -> generate -> metrics -> plots.
2. **The experiments**, in `dftlab.study`: the study and its verdicts, the real model, scale, pretraining the embedded
   models, distillation and the levers on a real model's writing. `dftlab.chat_samples`, the real chat model's samples, is an experiment
   too; it stays at the top level because the frozen rules (`study/rules.py`, hashed) import it from there.
3. **The course machinery**, in `dftlab.course`: the exercise checks, generating exercises, grading, the instructor's
   plan and the install command.
"""
from dftlab.models import DEFAULT_MODEL, default_model_name, load_gpt2_tokenizer, load_model

__version__ = "0.1.0"
__all__ = ["DEFAULT_MODEL", "default_model_name", "load_gpt2_tokenizer", "load_model", "__version__"]
