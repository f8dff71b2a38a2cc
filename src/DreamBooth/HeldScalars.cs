using TorchSharp;
using static TorchSharp.torch;

namespace DreamBooth;

/// <summary>
/// Scalars that stay alive. TorchSharp 0.107 turns a number it hands to libtorch into a temporary native
/// <see cref="Scalar"/> that only the garbage collector frees — including the hidden <c>alpha = 1</c> of every
/// <c>a + b</c> between tensors — and nothing keeps it alive while libtorch reads it: a collection that another thread
/// triggers during the call can free it mid-call ("Expected false to be true" from <c>c10::Scalar</c>; TorchSharp pull
/// requests #1434 / #1496). The hot paths — every residual sum of the UNet, VAE and text encoder, the noising and loss
/// of each training step, the classifier-free-guidance sum — add through <see cref="Plus"/>, whose alpha is one
/// process-lifetime Scalar; the activations, the optimizers and gradient clipping hold their own Scalars.
/// </summary>
internal static class HeldScalars
{
    /// <summary>The integer 1 (what <c>Tensor.add(Tensor)</c> passes as alpha), never freed.</summary>
    public static readonly Scalar One = 1.ToScalar();

    /// <summary><c>a + b</c> with a held alpha: the same libtorch call and the same values as the operator.</summary>
    public static Tensor Plus(this Tensor a, Tensor b) => a.add(b, One);
}
