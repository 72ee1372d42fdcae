"""erp-distill: distil a fine-tuned transformer into small students for ERP records."""

import logging

logging.getLogger(__name__).addHandler(logging.NullHandler())
