using DreamBooth.Sampling;

namespace DreamBooth.Loading.SingleFile;


/// <summary>
/// Options for reading a single-file checkpoint. Everything a file cannot tell (prediction type and
/// image size of SD 2.x files without a known global_step, head counts and group-norm size of
/// non-standard architectures) can be given here; a given value always wins over inference.
/// </summary>
public sealed record SingleFileOptions
{
    /// <summary>Prediction type; null = infer (SD 1.x: epsilon; SD 2.x: from global_step or a <c>v_pred</c> key).</summary>
    public PredictionType? PredictionType { get; init; }

    /// <summary>Training image size in pixels (512, 768, ...); null = infer like <see cref="PredictionType"/>.</summary>
    public int? ImageSize { get; init; }

    /// <summary>Force the variant; null = from the text-encoder keys.</summary>
    public SdVariant? Variant { get; init; }

    /// <summary>GroupNorm groups of UNet and VAE; null = 32 (Stable Diffusion's value).</summary>
    public int? NormNumGroups { get; init; }

    /// <summary>UNet <c>attention_head_dim</c> (one value, or one per level); null = 8 for SD 1.x, channels/64 per level for SD 2.x.</summary>
    public IReadOnlyList<int>? AttentionHeadDim { get; init; }

    /// <summary>Text-encoder attention heads; null = hidden size / 64 (12 for CLIP-L, 16 for OpenCLIP-H).</summary>
    public int? TextEncoderAttentionHeads { get; init; }

    /// <summary>SD 2.x text-encoder layers to keep; null = all stored blocks, minus the last for a released OpenCLIP tower (SD 2.x uses the penultimate layer).</summary>
    public int? TextEncoderLayers { get; init; }

    /// <summary>Use the EMA copy of the UNet (<c>model_ema.*</c>) instead of the trained weights, when the file has one.</summary>
    public bool UseEmaWeights { get; init; }

    /// <summary>Checks the options; throws <see cref="ArgumentException"/> naming the option and the fix.</summary>
    public void Validate()
    {
        if (ImageSize is { } s && (s < 64 || s > 8192 || s % 8 != 0))
            throw new ArgumentException($"SingleFileOptions.ImageSize = {s}: must be a multiple of 8 between 64 and 8192 (e.g. 512 or 768).", nameof(ImageSize));
        if (NormNumGroups is { } g && g <= 0)
            throw new ArgumentException($"SingleFileOptions.NormNumGroups = {g}: must be positive (Stable Diffusion uses 32).", nameof(NormNumGroups));
        if (AttentionHeadDim is { } a && (a.Count == 0 || a.Any(x => x <= 0)))
            throw new ArgumentException("SingleFileOptions.AttentionHeadDim: give one positive value or one per UNet level (e.g. [8] for SD 1.x, [5, 10, 20, 20] for SD 2.x).", nameof(AttentionHeadDim));
        if (TextEncoderAttentionHeads is { } h && h <= 0)
            throw new ArgumentException($"SingleFileOptions.TextEncoderAttentionHeads = {h}: must be positive (12 for SD 1.x, 16 for SD 2.x).", nameof(TextEncoderAttentionHeads));
        if (TextEncoderLayers is { } l && l <= 0)
            throw new ArgumentException($"SingleFileOptions.TextEncoderLayers = {l}: must be positive (23 for SD 2.x).", nameof(TextEncoderLayers));
    }
}
