using System.Text.Json.Serialization;
using DreamBooth.Loading;
using DreamBooth.Models.Common;

namespace DreamBooth.Models.Vae;

/// <summary>The fields of a diffusers <c>vae/config.json</c> (AutoencoderKL), with diffusers' defaults.</summary>
public sealed record AutoencoderKLConfig
{
    [JsonPropertyName("_class_name")] public string ClassName { get; init; } = "AutoencoderKL";
    [JsonPropertyName("_diffusers_version")] public string? DiffusersVersion { get; init; }
    [JsonPropertyName("in_channels")] public int InChannels { get; init; } = 3;
    [JsonPropertyName("out_channels")] public int OutChannels { get; init; } = 3;
    [JsonPropertyName("down_block_types")] public string[] DownBlockTypes { get; init; } = ["DownEncoderBlock2D"];
    [JsonPropertyName("up_block_types")] public string[] UpBlockTypes { get; init; } = ["UpDecoderBlock2D"];
    [JsonPropertyName("block_out_channels")] public int[] BlockOutChannels { get; init; } = [64];
    [JsonPropertyName("layers_per_block")] public int LayersPerBlock { get; init; } = 1;
    [JsonPropertyName("act_fn")] public string ActFn { get; init; } = "silu";
    [JsonPropertyName("latent_channels")] public int LatentChannels { get; init; } = 4;
    [JsonPropertyName("norm_num_groups")] public int NormNumGroups { get; init; } = 32;
    [JsonPropertyName("sample_size")] public int SampleSize { get; init; } = 32;
    [JsonPropertyName("scaling_factor")] public double ScalingFactor { get; init; } = 0.18215;
    [JsonPropertyName("shift_factor")] public double? ShiftFactor { get; init; }
    [JsonPropertyName("latents_mean")] public double[]? LatentsMean { get; init; }
    [JsonPropertyName("latents_std")] public double[]? LatentsStd { get; init; }
    [JsonPropertyName("force_upcast")] public bool ForceUpcast { get; init; } = true;
    [JsonPropertyName("mid_block_add_attention")] public bool MidBlockAddAttention { get; init; } = true;
    [JsonPropertyName("use_quant_conv")] public bool UseQuantConv { get; init; } = true;
    [JsonPropertyName("use_post_quant_conv")] public bool UsePostQuantConv { get; init; } = true;

    /// <summary>Pixel size of one latent cell (2^(levels-1): 8 for Stable Diffusion).</summary>
    [JsonIgnore] public int DownscaleFactor => 1 << (BlockOutChannels.Length - 1);

    public void Validate(string path)
    {
        [System.Diagnostics.CodeAnalysis.DoesNotReturn] void Fail(string msg) => throw new ModelLoadException(path, msg);
        if (ClassName != "AutoencoderKL") Fail($"_class_name is '{ClassName}', expected 'AutoencoderKL'");
        if (BlockOutChannels is null) Fail("block_out_channels is missing or null");
        if (DownBlockTypes is null) Fail("down_block_types is missing or null");
        if (UpBlockTypes is null) Fail("up_block_types is missing or null");
        if (ActFn is null) Fail("act_fn is null");
        int n = BlockOutChannels!.Length;
        if (n > 8) Fail($"block_out_channels has {n} levels; at most 8 are supported");
        if (BlockOutChannels.Any(c => c > 1 << 15)) Fail("block_out_channels entries must be at most 32768");
        if (LayersPerBlock > 64) Fail($"layers_per_block {LayersPerBlock} is too large (at most 64)");
        if (LatentChannels > 1024 || InChannels is <= 0 or > 1024 || OutChannels is <= 0 or > 1024) Fail("latent_channels / in_channels / out_channels must be in 1…1024");
        if (n == 0 || BlockOutChannels.Any(c => c <= 0)) Fail("block_out_channels must be a non-empty list of positive ints");
        if (DownBlockTypes.Length != n) Fail($"down_block_types has {DownBlockTypes.Length} entries but block_out_channels has {n}");
        if (UpBlockTypes.Length != n) Fail($"up_block_types has {UpBlockTypes.Length} entries but block_out_channels has {n}");
        foreach (var t in DownBlockTypes)
            if (t != "DownEncoderBlock2D") Fail($"unknown or unsupported down block type '{t}' (supported: DownEncoderBlock2D)");
        foreach (var t in UpBlockTypes)
            if (t != "UpDecoderBlock2D") Fail($"unknown or unsupported up block type '{t}' (supported: UpDecoderBlock2D)");
        if (LayersPerBlock <= 0) Fail($"layers_per_block must be positive (got {LayersPerBlock})");
        if (NormNumGroups <= 0 || BlockOutChannels.Any(c => c % NormNumGroups != 0))
            Fail($"norm_num_groups {NormNumGroups} must divide every block_out_channels entry");
        if (LatentChannels <= 0) Fail("latent_channels must be positive");
        if (!(ScalingFactor > 0)) Fail($"scaling_factor must be positive (got {ScalingFactor})");
        if (!Activations.IsKnown(ActFn)) Fail($"unknown act_fn '{ActFn}'");
    }
}
