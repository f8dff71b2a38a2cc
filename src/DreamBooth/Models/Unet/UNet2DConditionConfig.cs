using System.Text.Json.Serialization;
using DreamBooth.Loading;
using DreamBooth.Models.Common;

namespace DreamBooth.Models.Unet;

/// <summary>
/// The fields of a diffusers <c>unet/config.json</c> that the SD 1.x / 2.x architecture uses (defaults as in diffusers).
/// Fields this implementation does not support (SDXL additions, class embeddings…) are read so that
/// <see cref="Validate"/> can refuse them with a clear message instead of silently building the wrong model.
/// </summary>
public sealed record UNet2DConditionConfig
{
    public static readonly string[] SupportedDownBlocks = ["CrossAttnDownBlock2D", "DownBlock2D"];
    public static readonly string[] SupportedUpBlocks = ["CrossAttnUpBlock2D", "UpBlock2D"];
    public static readonly string[] SupportedMidBlocks = ["UNetMidBlock2DCrossAttn"];

    [JsonPropertyName("_class_name")] public string ClassName { get; init; } = "UNet2DConditionModel";
    [JsonPropertyName("_diffusers_version")] public string? DiffusersVersion { get; init; }
    [JsonPropertyName("sample_size")] public int SampleSize { get; init; } = 64;
    [JsonPropertyName("in_channels")] public int InChannels { get; init; } = 4;
    [JsonPropertyName("out_channels")] public int OutChannels { get; init; } = 4;
    [JsonPropertyName("center_input_sample")] public bool CenterInputSample { get; init; }
    [JsonPropertyName("flip_sin_to_cos")] public bool FlipSinToCos { get; init; } = true;
    [JsonPropertyName("freq_shift")] public double FreqShift { get; init; }
    [JsonPropertyName("down_block_types")] public string[] DownBlockTypes { get; init; } = ["CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"];
    [JsonPropertyName("mid_block_type")] public string? MidBlockType { get; init; } = "UNetMidBlock2DCrossAttn";
    [JsonPropertyName("up_block_types")] public string[] UpBlockTypes { get; init; } = ["UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"];
    [JsonPropertyName("only_cross_attention")] public bool OnlyCrossAttention { get; init; }
    [JsonPropertyName("block_out_channels")] public int[] BlockOutChannels { get; init; } = [320, 640, 1280, 1280];
    [JsonPropertyName("layers_per_block")] public int LayersPerBlock { get; init; } = 2;
    [JsonPropertyName("downsample_padding")] public int DownsamplePadding { get; init; } = 1;
    [JsonPropertyName("mid_block_scale_factor")] public double MidBlockScaleFactor { get; init; } = 1;
    [JsonPropertyName("dropout")] public double Dropout { get; init; }
    [JsonPropertyName("act_fn")] public string ActFn { get; init; } = "silu";
    [JsonPropertyName("norm_num_groups")] public int NormNumGroups { get; init; } = 32;
    [JsonPropertyName("norm_eps")] public double NormEps { get; init; } = 1e-5;
    [JsonPropertyName("cross_attention_dim")] public int CrossAttentionDim { get; init; } = 1280;
    [JsonPropertyName("transformer_layers_per_block")] public IntOrList? TransformerLayersPerBlock { get; init; } = new(1);
    [JsonPropertyName("attention_head_dim")] public IntOrList? AttentionHeadDim { get; init; } = new(8);
    [JsonPropertyName("num_attention_heads")] public IntOrList? NumAttentionHeads { get; init; }
    [JsonPropertyName("dual_cross_attention")] public bool DualCrossAttention { get; init; }
    [JsonPropertyName("use_linear_projection")] public bool UseLinearProjection { get; init; }
    [JsonPropertyName("upcast_attention")] public bool UpcastAttention { get; init; }
    [JsonPropertyName("resnet_time_scale_shift")] public string ResnetTimeScaleShift { get; init; } = "default";
    [JsonPropertyName("resnet_out_scale_factor")] public double ResnetOutScaleFactor { get; init; } = 1.0;
    [JsonPropertyName("time_embedding_type")] public string TimeEmbeddingType { get; init; } = "positional";
    [JsonPropertyName("time_embedding_dim")] public int? TimeEmbeddingDim { get; init; }
    [JsonPropertyName("time_embedding_act_fn")] public string? TimeEmbeddingActFn { get; init; }
    [JsonPropertyName("timestep_post_act")] public string? TimestepPostAct { get; init; }
    [JsonPropertyName("time_cond_proj_dim")] public int? TimeCondProjDim { get; init; }
    [JsonPropertyName("conv_in_kernel")] public int ConvInKernel { get; init; } = 3;
    [JsonPropertyName("conv_out_kernel")] public int ConvOutKernel { get; init; } = 3;
    [JsonPropertyName("class_embed_type")] public string? ClassEmbedType { get; init; }
    [JsonPropertyName("num_class_embeds")] public int? NumClassEmbeds { get; init; }
    [JsonPropertyName("addition_embed_type")] public string? AdditionEmbedType { get; init; }
    [JsonPropertyName("encoder_hid_dim")] public int? EncoderHidDim { get; init; }
    [JsonPropertyName("encoder_hid_dim_type")] public string? EncoderHidDimType { get; init; }
    [JsonPropertyName("attention_type")] public string AttentionType { get; init; } = "default";
    [JsonPropertyName("reverse_transformer_layers_per_block")] public object? ReverseTransformerLayersPerBlock { get; init; }
    [JsonPropertyName("cross_attention_norm")] public string? CrossAttentionNorm { get; init; }
    [JsonPropertyName("resnet_skip_time_act")] public bool ResnetSkipTimeAct { get; init; }
    [JsonPropertyName("mid_block_only_cross_attention")] public bool? MidBlockOnlyCrossAttention { get; init; }
    [JsonPropertyName("class_embeddings_concat")] public bool ClassEmbeddingsConcat { get; init; }
    [JsonPropertyName("addition_time_embed_dim")] public int? AdditionTimeEmbedDim { get; init; }
    [JsonPropertyName("addition_embed_type_num_heads")] public int? AdditionEmbedTypeNumHeads { get; init; }
    [JsonPropertyName("projection_class_embeddings_input_dim")] public int? ProjectionClassEmbeddingsInputDim { get; init; }

    /// <summary>Attention heads per down block (diffusers: <c>num_attention_heads</c>, or the legacy <c>attention_head_dim</c>, which is a head COUNT).</summary>
    [JsonIgnore] public int[] HeadsPerBlock => (NumAttentionHeads ?? AttentionHeadDim ?? new IntOrList(8)).Expand(BlockOutChannels.Length, "attention_head_dim / num_attention_heads");

    [JsonIgnore] public int[] TransformerLayers => (TransformerLayersPerBlock ?? new IntOrList(1)).Expand(BlockOutChannels.Length, "transformer_layers_per_block");

    /// <summary>Throws a <see cref="ModelLoadException"/> naming <paramref name="path"/> for anything this implementation cannot build.</summary>
    public void Validate(string path)
    {
        [System.Diagnostics.CodeAnalysis.DoesNotReturn] void Fail(string msg) => throw new ModelLoadException(path, msg);
        if (ClassName != "UNet2DConditionModel")
            Fail($"_class_name is '{ClassName}', expected 'UNet2DConditionModel'");
        if (BlockOutChannels is null) Fail("block_out_channels is missing or null");
        if (DownBlockTypes is null) Fail("down_block_types is missing or null");
        if (UpBlockTypes is null) Fail("up_block_types is missing or null");
        if (ActFn is null) Fail("act_fn is null");
        int n = BlockOutChannels!.Length;
        if (n > 16) Fail($"block_out_channels has {n} levels; at most 16 are supported");
        if (BlockOutChannels.Any(c => c > 1 << 16)) Fail("block_out_channels entries must be at most 65536");
        if (LayersPerBlock > 64) Fail($"layers_per_block {LayersPerBlock} is too large (at most 64)");
        if (CrossAttentionDim > 1 << 16) Fail($"cross_attention_dim {CrossAttentionDim} is too large");
        if (InChannels > 1024 || OutChannels > 1024) Fail("in_channels / out_channels must be at most 1024");
        if (ConvInKernel is < 1 or > 15 || ConvOutKernel is < 1 or > 15) Fail("conv_in_kernel / conv_out_kernel must be in 1…15");
        if (TimeEmbeddingDim is <= 0 or > 1 << 16) Fail("time_embedding_dim must be in 1…65536");
        if (n == 0) Fail("block_out_channels is empty");
        if (BlockOutChannels.Any(c => c <= 0)) Fail("block_out_channels must be positive");
        if (DownBlockTypes.Length != n) Fail($"down_block_types has {DownBlockTypes.Length} entries but block_out_channels has {n}");
        if (UpBlockTypes.Length != n) Fail($"up_block_types has {UpBlockTypes.Length} entries but block_out_channels has {n}");
        foreach (var t in DownBlockTypes)
            if (!SupportedDownBlocks.Contains(t)) Fail($"unknown or unsupported down block type '{t}' (supported: {string.Join(", ", SupportedDownBlocks)})");
        foreach (var t in UpBlockTypes)
            if (!SupportedUpBlocks.Contains(t)) Fail($"unknown or unsupported up block type '{t}' (supported: {string.Join(", ", SupportedUpBlocks)})");
        if (MidBlockType is not null && !SupportedMidBlocks.Contains(MidBlockType))
            Fail($"unknown or unsupported mid block type '{MidBlockType}' (supported: {string.Join(", ", SupportedMidBlocks)})");
        if (LayersPerBlock <= 0) Fail($"layers_per_block must be positive (got {LayersPerBlock})");
        if (NormNumGroups <= 0 || BlockOutChannels.Any(c => c % NormNumGroups != 0))
            Fail($"norm_num_groups {NormNumGroups} must divide every block_out_channels entry ({string.Join(", ", BlockOutChannels)})");
        if (CrossAttentionDim <= 0) Fail("cross_attention_dim must be positive");
        try
        {
            var heads = HeadsPerBlock;
            if (TransformerLayers.Any(l => l is < 0 or > 64)) Fail("transformer_layers_per_block entries must be in 0…64");
            for (int i = 0; i < n; i++)
                if (heads[i] <= 0 || BlockOutChannels[i] % heads[i] != 0)
                    Fail($"attention heads {heads[i]} do not divide block_out_channels[{i}] = {BlockOutChannels[i]}");
            _ = TransformerLayers;
        }
        catch (ArgumentException e) { Fail(e.Message); }
        if (!Activations.IsKnown(ActFn!)) Fail($"unknown act_fn '{ActFn}'");
        if (TimeEmbeddingActFn is not null && !Activations.IsKnown(TimeEmbeddingActFn)) Fail($"unknown time_embedding_act_fn '{TimeEmbeddingActFn}'");
        if (ResnetTimeScaleShift != "default") Fail($"resnet_time_scale_shift '{ResnetTimeScaleShift}' is not supported (only 'default', as in SD 1.x/2.x)");
        if (TimeEmbeddingType != "positional") Fail($"time_embedding_type '{TimeEmbeddingType}' is not supported (only 'positional')");
        if (ClassEmbedType is not null || NumClassEmbeds is not null) Fail("class embeddings (class_embed_type / num_class_embeds) are not supported");
        if (AdditionEmbedType is not null) Fail($"addition_embed_type '{AdditionEmbedType}' (SDXL-style conditioning) is not supported; this engine runs SD 1.x / 2.x UNets");
        if (EncoderHidDim is not null || EncoderHidDimType is not null) Fail("encoder_hid_dim is not supported");
        if (TimeCondProjDim is not null) Fail("time_cond_proj_dim (LCM) is not supported");
        if (DualCrossAttention) Fail("dual_cross_attention is not supported");
        if (OnlyCrossAttention) Fail("only_cross_attention is not supported");
        if (AttentionType != "default") Fail($"attention_type '{AttentionType}' is not supported");
        if (TimestepPostAct is not null) Fail("timestep_post_act is not supported");
        if (ConvInKernel % 2 == 0 || ConvOutKernel % 2 == 0) Fail("conv_in_kernel / conv_out_kernel must be odd");
        if (InChannels <= 0 || OutChannels <= 0) Fail("in_channels / out_channels must be positive");
    }
}
