using TorchSharp;
using static TorchSharp.torch;

namespace DreamBooth.Training.Optim;

/// <summary>
/// Offset noise (Guttenberg 2023, "Diffusion with Offset Noise"; diffusers' <c>--noise_offset</c>): adds a
/// per-sample, per-channel constant so the model can learn to change the mean brightness of an image.
/// </summary>
public static class OffsetNoise
{
    /// <summary>
    /// Returns <c>noise + offset · randn(B, C, 1, 1)</c> for 4-D <paramref name="noise"/> [B, C, H, W]; the extra
    /// noise is drawn from <paramref name="generator"/> (for reproducible runs) on the noise's device and dtype.
    /// </summary>
    public static Tensor Apply(Tensor noise, double offset, Generator? generator = null)
    {
        ArgumentNullException.ThrowIfNull(noise);
        if (noise.dim() != 4)
            throw new ArgumentException($"Offset noise needs 4-D latent noise [B, C, H, W], got shape [{string.Join(", ", noise.shape)}].", nameof(noise));
        if (!double.IsFinite(offset) || offset < 0)
            throw new ArgumentOutOfRangeException(nameof(offset), offset, "noise_offset must be a finite number >= 0; typical 0.05-0.1.");
        using var scope = torch.NewDisposeScope();
        var extra = torch.randn(new[] { noise.shape[0], noise.shape[1], 1L, 1L }, noise.dtype, noise.device, generator: generator);
        return noise.Plus(extra.Times(offset)).MoveToOuterDisposeScope();
    }
}
