"""What the worker loads to score posts: the built model's files (`built_model`), the
runtimes (`backends`: ONNX, torch, Hugging Face), the classifier with its cache and
batching (`classifier`), and Vigie's linear head (`head`). Nothing here builds or trains."""
