using DreamBooth.Models.Clip;
using DreamBooth.Text;
using TorchSharp;
using static TorchSharp.torch;

namespace DreamBooth.Pipelines;

/// <summary>
/// Turns prompts into the UNet's conditioning the way AUTOMATIC1111 does: emphasis weights <c>(word:1.3)</c>, prompts
/// longer than 75 tokens in chunks of 77 concatenated along the token axis, clip skip (1 = last layer, 2 = penultimate
/// + final layer norm, …), and a negative prompt padded to the same number of chunks.
/// </summary>
public sealed class PromptEncoder
{
    public PromptEncoder(ClipTokenizer tokenizer, ClipTextModel textEncoder)
    {
        Tokenizer = tokenizer;
        TextEncoder = textEncoder;
    }

    public ClipTokenizer Tokenizer { get; }

    public ClipTextModel TextEncoder { get; }

    /// <summary>Encodes cond and uncond prompts to [1, 77·chunks, D] each (equal chunk counts).</summary>
    public (Tensor Cond, Tensor Uncond) EncodePair(string prompt, string negativePrompt, int clipSkip = 1, bool weighting = true)
    {
        var opts = new PromptChunkOptions { ParseEmphasis = weighting };
        var cond = PromptWeighting.Tokenize(Tokenizer, prompt, opts);
        var uncond = PromptWeighting.Tokenize(Tokenizer, negativePrompt, opts);
        (cond, uncond) = PromptWeighting.MatchChunkCounts(Tokenizer, cond, uncond);
        return (Encode(cond, clipSkip), Encode(uncond, clipSkip));
    }

    /// <summary>Encodes one prompt to [1, 77·chunks, D].</summary>
    public Tensor Encode(string prompt, int clipSkip = 1, bool weighting = true) =>
        Encode(PromptWeighting.Tokenize(Tokenizer, prompt, new PromptChunkOptions { ParseEmphasis = weighting }), clipSkip);

    /// <summary>Encodes tokenized chunks: text encoder per chunk, clip skip, weights with mean restore.</summary>
    public Tensor Encode(PromptChunks chunks, int clipSkip)
    {
        int layers = TextEncoder.Config.NumHiddenLayers;
        if (clipSkip < 1 || clipSkip > layers)
            throw new ArgumentException($"clip skip must be between 1 and {layers} (the text encoder's layer count), got {clipSkip}", nameof(clipSkip));
        using var ids = chunks.IdsTensor(TextEncoder.Device);
        var hidden = EncodeIds(ids, clipSkip);
        return PromptWeighting.ApplyWeights(hidden.to(ScalarType.Float32), chunks.Weights);
    }

    /// <summary>Runs the text encoder on [B, 77] ids with clip skip: [B, 77, D] (the plain diffusers path when clipSkip = 1).</summary>
    public Tensor EncodeIds(Tensor ids, int clipSkip = 1)
    {
        int layers = TextEncoder.Config.NumHiddenLayers;
        var o = TextEncoder.Forward(ids, stopAtLayer: layers - clipSkip + 1);
        return clipSkip == 1 ? o.LastHiddenState : TextEncoder.FinalLayerNorm(o.HiddenStates[^1]);
    }
}
