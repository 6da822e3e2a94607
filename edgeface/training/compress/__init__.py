"""Training half: compression techniques. Each module says *what* to compress (which layers, how much);
``finetune`` says *when* (distillation from the uncompressed model on aligned faces), shared by all of them."""
