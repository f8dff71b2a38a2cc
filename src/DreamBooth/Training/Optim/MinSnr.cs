using TorchSharp;
using static TorchSharp.torch;

namespace DreamBooth.Training.Optim;

/// <summary>What the UNet predicts, which decides the min-SNR weight's denominator.</summary>
public enum SnrPredictionType
{
    /// <summary>The noise ε (SD 1.x, SD 2 base).</summary>
    Epsilon,
    /// <summary>v = α·ε − σ·x0 (SD 2.x 768).</summary>
    VPrediction,
}

/// <summary>
/// Min-SNR-γ loss weighting (Hang et al. 2023, "Efficient Diffusion Training via Min-SNR Weighting Strategy"),
/// as diffusers' train_text_to_image.py applies it: the per-sample MSE is multiplied by
/// min(SNR, γ)/SNR for ε-prediction and min(SNR, γ)/(SNR+1) for v-prediction.
/// </summary>
public static class MinSnr
{
    /// <summary>
    /// SNR(t) = ᾱ_t / (1 − ᾱ_t) for each timestep (diffusers' <c>compute_snr</c>), in fp32 on the
    /// timesteps' device. <paramref name="alphasCumprod"/> is the noise schedule's ᾱ.
    /// </summary>
    public static Tensor ComputeSnr(Tensor alphasCumprod, Tensor timesteps)
    {
        using var scope = torch.NewDisposeScope();
        var a = alphasCumprod.to(ScalarType.Float32).to(timesteps.device).index_select(0, timesteps.to(ScalarType.Int64).reshape(-1));
        var sqrtA = a.sqrt();
        var sqrtOneMinusA = (1.0f - a).sqrt();
        return ((sqrtA / sqrtOneMinusA).pow(2)).reshape(timesteps.shape).MoveToOuterDisposeScope();
    }

    /// <summary>
    /// Per-sample weights from <paramref name="snr"/> (any shape, usually [B]). Where SNR is 0 (zero-terminal-SNR
    /// schedules) the ε weight would be 0/0; it is set to 1, its limit as SNR → 0.
    /// </summary>
    public static Tensor Weights(Tensor snr, double gamma, SnrPredictionType predictionType)
    {
        ArgumentNullException.ThrowIfNull(snr);
        if (!(gamma > 0) || double.IsInfinity(gamma))
            throw new ArgumentOutOfRangeException(nameof(gamma), gamma, "snr_gamma must be a finite number > 0; the paper recommends 5.");
        using var scope = torch.NewDisposeScope();
        var s = snr.to(ScalarType.Float32);
        var clipped = torch.minimum(s, torch.full_like(s, gamma));
        Tensor w = predictionType switch
        {
            SnrPredictionType.Epsilon => torch.where(s == 0, torch.ones_like(s), clipped / s),
            SnrPredictionType.VPrediction => clipped / (s + 1),
            _ => throw new ArgumentOutOfRangeException(nameof(predictionType), predictionType, "Unknown prediction type."),
        };
        return w.MoveToOuterDisposeScope();
    }
}

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
        return (noise + extra * offset).MoveToOuterDisposeScope();
    }
}
