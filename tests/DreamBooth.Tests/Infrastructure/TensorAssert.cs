using TorchSharp;

namespace DreamBooth.Tests.Infrastructure;

public static class TensorAssert
{
    /// <summary>True when shapes, dtypes and every element are identical (bit for bit for floats other than NaN).</summary>
    public static bool BitEqual(torch.Tensor a, torch.Tensor b) =>
        a.shape.SequenceEqual(b.shape) && a.dtype == b.dtype && a.eq(b).all().item<bool>();
}
