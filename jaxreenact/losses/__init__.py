"""Training objectives. Losses are evaluated in (at least) float32 whatever the networks' compute dtype."""
import jax
import jax.numpy as jnp


def at_least_f32(tree):
  """Casts floating leaves below float32 (bf16/fp16 network outputs) up to float32; float64 stays float64."""
  def cast(x):
    if hasattr(x, "dtype") and jnp.issubdtype(x.dtype, jnp.floating):
      return x.astype(jnp.promote_types(x.dtype, jnp.float32))
    return x
  return jax.tree.map(cast, tree)
