"""The named architectures that ``conf/model/*.yaml`` refer to by module path.

Each takes the data's ``input_shape`` (C, H, W or features) and ``num_classes`` from the dataset
config, so one YAML works for MNIST, Fashion-MNIST and image folders alike.
"""
