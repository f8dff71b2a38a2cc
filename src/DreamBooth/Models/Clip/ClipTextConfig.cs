using System.Text.Json.Serialization;
using DreamBooth.Loading;
using DreamBooth.Models.Common;

namespace DreamBooth.Models.Clip;

/// <summary>The fields of a transformers <c>text_encoder/config.json</c> (CLIPTextConfig), with transformers' defaults.</summary>
public sealed record ClipTextConfig
{
    [JsonPropertyName("architectures")] public string[]? Architectures { get; init; }
    [JsonPropertyName("model_type")] public string? ModelType { get; init; } = "clip_text_model";
    [JsonPropertyName("vocab_size")] public int VocabSize { get; init; } = 49408;
    [JsonPropertyName("hidden_size")] public int HiddenSize { get; init; } = 512;
    [JsonPropertyName("intermediate_size")] public int IntermediateSize { get; init; } = 2048;
    [JsonPropertyName("projection_dim")] public int ProjectionDim { get; init; } = 512;
    [JsonPropertyName("num_hidden_layers")] public int NumHiddenLayers { get; init; } = 12;
    [JsonPropertyName("num_attention_heads")] public int NumAttentionHeads { get; init; } = 8;
    [JsonPropertyName("max_position_embeddings")] public int MaxPositionEmbeddings { get; init; } = 77;
    [JsonPropertyName("hidden_act")] public string HiddenAct { get; init; } = "quick_gelu";
    [JsonPropertyName("layer_norm_eps")] public double LayerNormEps { get; init; } = 1e-5;
    [JsonPropertyName("attention_dropout")] public double AttentionDropout { get; init; }
    [JsonPropertyName("dropout")] public double Dropout { get; init; }
    [JsonPropertyName("pad_token_id")] public int PadTokenId { get; init; } = 1;
    [JsonPropertyName("bos_token_id")] public int BosTokenId { get; init; } = 49406;
    [JsonPropertyName("eos_token_id")] public int EosTokenId { get; init; } = 49407;
    [JsonPropertyName("torch_dtype")] public string? TorchDType { get; init; }
    [JsonPropertyName("transformers_version")] public string? TransformersVersion { get; init; }

    public void Validate(string path)
    {
        [System.Diagnostics.CodeAnalysis.DoesNotReturn] void Fail(string msg) => throw new ModelLoadException(path, msg);
        if (ModelType is not null && ModelType != "clip_text_model" && ModelType != "clip")
            Fail($"model_type is '{ModelType}', expected 'clip_text_model'");
        if (Architectures is { Length: > 0 } a && !a.Contains("CLIPTextModel") && !a.Contains("CLIPTextModelWithProjection"))
            Fail($"architectures [{string.Join(", ", a)}] is not a CLIP text model");
        if (HiddenAct is null) Fail("hidden_act is null");
        if (VocabSize > 1 << 22 || HiddenSize > 1 << 16 || IntermediateSize > 1 << 18 || NumHiddenLayers > 256 || MaxPositionEmbeddings > 1 << 16)
            Fail("vocab_size, hidden_size, intermediate_size, num_hidden_layers or max_position_embeddings is implausibly large for a CLIP text model");
        if (VocabSize <= 0 || HiddenSize <= 0 || IntermediateSize <= 0 || NumHiddenLayers <= 0 || MaxPositionEmbeddings <= 0)
            Fail("vocab_size, hidden_size, intermediate_size, num_hidden_layers and max_position_embeddings must be positive");
        if (NumAttentionHeads <= 0 || HiddenSize % NumAttentionHeads != 0)
            Fail($"num_attention_heads {NumAttentionHeads} must divide hidden_size {HiddenSize}");
        if (!Activations.IsKnown(HiddenAct!)) Fail($"unknown hidden_act '{HiddenAct}' (known: {string.Join(", ", Activations.Known)})");
    }
}
