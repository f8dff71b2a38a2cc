using DreamBooth.Sampling;
using SixLabors.ImageSharp;
using SixLabors.ImageSharp.PixelFormats;

namespace DreamBooth.Pipelines;

/// <summary>
/// One text-to-image (or image-to-image, when <see cref="InitImage"/> is set) request, in AUTOMATIC1111's terms.
/// <see cref="Validate"/> fails fast with the option's name and the fix.
/// </summary>
public sealed record GenerationRequest
{
    public string Prompt { get; init; } = "";

    public string NegativePrompt { get; init; } = "";

    /// <summary>Width in pixels (multiple of 8); null = the model's native resolution.</summary>
    public int? Width { get; init; }

    public int? Height { get; init; }

    public int Steps { get; init; } = 20;

    /// <summary>Classifier-free guidance scale ("CFG scale"); ≤ 1 disables the unconditional pass.</summary>
    public double GuidanceScale { get; init; } = 7.5;

    /// <summary>
    /// Guidance rescale φ (Lin et al. 2023, §3.4; diffusers' <c>guidance_rescale</c>, A1111's "CFG Rescale"): the guided
    /// output is rescaled to the standard deviation of the conditional output and mixed back with weight φ, which keeps
    /// high CFG scales from over-exposing models trained with zero terminal SNR. 0 = off; 0.7 is the paper's value.
    /// </summary>
    public double GuidanceRescale { get; init; }

    public Sampler Sampler { get; init; } = Sampler.EulerAncestral;

    /// <summary>Seed of the first image (image i uses Seed + i, as in AUTOMATIC1111); -1 picks a random one.</summary>
    public long Seed { get; init; } = -1;

    /// <summary>Explicit per-image seeds (overrides <see cref="Seed"/> and <see cref="BatchSize"/>).</summary>
    public IReadOnlyList<long>? Seeds { get; init; }

    public int BatchSize { get; init; } = 1;

    /// <summary>AUTOMATIC1111's "Clip skip": 1 = last text-encoder layer, 2 = penultimate, …</summary>
    public int ClipSkip { get; init; } = 1;

    /// <summary>DDIM η (0 = deterministic DDIM).</summary>
    public double Eta { get; init; }

    /// <summary>Parse <c>(word:1.3)</c> emphasis (on by default, as in AUTOMATIC1111).</summary>
    public bool PromptWeighting { get; init; } = true;

    /// <summary>Image-to-image: the starting image (resized by the caller to Width × Height).</summary>
    public Image<Rgb24>? InitImage { get; init; }

    /// <summary>Image-to-image denoising strength in (0, 1]: 1 ignores the init image, small values keep it.</summary>
    public double Strength { get; init; } = 0.75;

    /// <summary>
    /// Images per UNet call. null = automatic: 1 on the CPU (so an image is bit-identical whatever the batch size or its
    /// position: CPU kernels pick different blockings for different batch sizes), the whole batch on a GPU.
    /// </summary>
    public int? UnetMicroBatch { get; init; }

    /// <summary>Compute a latent preview image every N steps for the progress report (0 = never).</summary>
    public int PreviewEvery { get; init; }

    /// <summary>The per-image seeds this request resolves to (random ones drawn once by the caller).</summary>
    public IReadOnlyList<long> ResolveSeeds(Random? random = null)
    {
        if (Seeds is { Count: > 0 }) return Seeds;
        long first = Seed >= 0 ? Seed : (random ?? Random.Shared).NextInt64(0, uint.MaxValue);
        return Enumerable.Range(0, BatchSize).Select(i => first + i).ToArray();
    }

    /// <summary>Throws <see cref="ArgumentException"/> naming the option, what was given, and what is allowed.</summary>
    public void Validate(int vaeScaleFactor = 8, int maxSide = 4096)
    {
        static void Check(bool ok, string option, string message)
        {
            if (!ok) throw new ArgumentException(message, option);
        }
        int align = Math.Max(8, vaeScaleFactor);
        if (Width is int w) Check(w % align == 0 && w > 0, "width", $"width must be a multiple of {align} (got {w})");
        if (Height is int h) Check(h % align == 0 && h > 0, "height", $"height must be a multiple of {align} (got {h})");
        if (Width is int w2) Check(w2 <= maxSide, "width", $"width must be at most {maxSide} (got {w2})");
        if (Height is int h2) Check(h2 <= maxSide, "height", $"height must be at most {maxSide} (got {h2})");
        Check(Steps is >= 1 and <= 1000, "steps", $"steps must be between 1 and 1000 (got {Steps})");
        Check(GuidanceScale is >= 0 and <= 100 && !double.IsNaN(GuidanceScale), "cfg-scale", $"CFG scale must be between 0 and 100 (got {GuidanceScale})");
        Check(GuidanceRescale is >= 0 and <= 1, "guidance-rescale", $"guidance rescale must be between 0 and 1 (got {GuidanceRescale})");
        Check(BatchSize is >= 1 and <= 64, "batch-size", $"batch size must be between 1 and 64 (got {BatchSize})");
        Check(Seeds is null || Seeds.Count <= 64, "seeds", "at most 64 seeds per call");
        Check(Seeds is null || Seeds.All(s => s >= 0), "seeds", "seeds must be ≥ 0");
        Check(ClipSkip is >= 1 and <= 12, "clip-skip", $"clip skip must be between 1 and 12 (got {ClipSkip})");
        Check(Eta is >= 0 and <= 1, "eta", $"eta must be between 0 and 1 (got {Eta})");
        Check(InitImage is null || (Strength > 0 && Strength <= 1), "strength", $"strength must be in (0, 1] (got {Strength})");
        Check(UnetMicroBatch is null or >= 1, "unet-micro-batch", $"unet micro-batch must be ≥ 1 (got {UnetMicroBatch})");
        Check(PreviewEvery >= 0, "preview-every", $"preview-every must be ≥ 0 (got {PreviewEvery})");
    }
}
