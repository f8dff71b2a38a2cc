using TorchSharp;
using static TorchSharp.torch;

namespace DreamBooth.Models.Common;

/// <summary>
/// Runs a sub-network inside its own dispose scope and keeps only what it returns. TorchSharp's C# handles keep every
/// intermediate tensor alive until the caller's scope ends (PyTorch frees them by reference count as soon as the
/// Python variable dies), so without this a whole UNet forward would hold all its activations at once — under
/// <c>no_grad</c> in sampling, and in the no-grad first pass of gradient checkpointing, which would then save nothing.
/// Tensors autograd saved for backward stay alive through the graph's own references.
/// </summary>
internal static class Scoped
{
    /// <summary>Runs <paramref name="fn"/>; intermediates it created are released when it returns.</summary>
    public static Tensor Run(Func<Tensor> fn)
    {
        using var scope = torch.NewDisposeScope();
        var result = fn();
        // a no-op for a tensor that was not created in this scope (e.g. an input returned unchanged)
        scope.MoveToOuter(result);
        return result;
    }

    /// <summary>As <see cref="Run(Func{Tensor})"/> for several outputs.</summary>
    public static Tensor[] Run(Func<Tensor[]> fn)
    {
        using var scope = torch.NewDisposeScope();
        var result = fn();
        scope.MoveToOuter(result);
        return result;
    }
}
