"""Fine-tune a classifier from a recipe config.

    python recipes/finetune.py recipes/configs/text/minilm_lora.yaml [key=value ...]
    accelerate launch recipes/finetune.py recipes/configs/text/minilm_lora.yaml [key=value ...]
    hftl train recipes/configs/text/minilm_lora.yaml [key=value ...]

The recipe itself (config -> data -> model -> method -> loop -> eval -> save) is hftl.recipe.run.
"""

import sys

from hftl.cli import main

if __name__ == "__main__":
    sys.exit(main(["train", *sys.argv[1:]]))
