using DreamBooth.Models.Common;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace DreamBooth.Models.Clip;

#pragma warning disable IDE1006 // field names are the PyTorch attribute names, so state-dict keys match transformers

/// <summary>The text encoder's outputs.</summary>
/// <param name="LastHiddenState">[B, L, D] after the final layer norm.</param>
/// <param name="PooledOutput">[B, D]: the final hidden state at the end-of-text token.</param>
/// <param name="HiddenStates">Embeddings, then the output of every layer (no final norm): count = layers + 1.</param>
/// <param name="PooledIndex">[B] the position used for pooling.</param>
public sealed record ClipTextOutput(Tensor LastHiddenState, Tensor PooledOutput, IReadOnlyList<Tensor> HiddenStates, Tensor PooledIndex);

public sealed class ClipTextEmbeddings : nn.Module<Tensor, Tensor>
{
    private readonly Embedding token_embedding, position_embedding;

    public ClipTextEmbeddings(ModelPlacement p, ClipTextConfig c) : base("CLIPTextEmbeddings")
    {
        token_embedding = Layers.Embedding(p, c.VocabSize, c.HiddenSize);
        position_embedding = Layers.Embedding(p, c.MaxPositionEmbeddings, c.HiddenSize);
        RegisterComponents();
    }

    public override Tensor forward(Tensor inputIds)
    {
        var positions = torch.arange(inputIds.shape[1], dtype: ScalarType.Int64, device: inputIds.device).unsqueeze(0);
        return token_embedding.forward(inputIds).Plus(position_embedding.forward(positions));
    }
}

public sealed class ClipAttention : nn.Module, ILoraTarget
{
    private readonly Linear q_proj, k_proj, v_proj, out_proj;
    private readonly int heads;
    private readonly Dictionary<string, LoraAdapter> adapters = new(StringComparer.Ordinal);

    public ClipAttention(ModelPlacement p, ClipTextConfig c) : base("CLIPAttention")
    {
        q_proj = Layers.Linear(p, c.HiddenSize, c.HiddenSize);
        k_proj = Layers.Linear(p, c.HiddenSize, c.HiddenSize);
        v_proj = Layers.Linear(p, c.HiddenSize, c.HiddenSize);
        out_proj = Layers.Linear(p, c.HiddenSize, c.HiddenSize);
        heads = c.NumAttentionHeads;
        RegisterComponents();
    }

    public IReadOnlyList<(string Name, Linear Linear)> LoraProjections => [("q_proj", q_proj), ("k_proj", k_proj), ("v_proj", v_proj), ("out_proj", out_proj)];

    public IEnumerable<LoraAdapter> AttachedAdapters => adapters.Values;

    public void SetAdapter(string projection, LoraAdapter? adapter)
    {
        if (!LoraProjections.Any(p => p.Name == projection)) throw new ArgumentException($"no projection '{projection}' in this attention layer");
        if (adapter is null) adapters.Remove(projection); else adapters[projection] = adapter;
    }

    public Tensor Forward(Tensor x, Tensor mask)
    {
        var q = LoraProjection.Apply(q_proj, adapters.GetValueOrDefault("q_proj"), x);
        var k = LoraProjection.Apply(k_proj, adapters.GetValueOrDefault("k_proj"), x);
        var v = LoraProjection.Apply(v_proj, adapters.GetValueOrDefault("v_proj"), x);
        return LoraProjection.Apply(out_proj, adapters.GetValueOrDefault("out_proj"), AttentionCore.Compute(q, k, v, heads, false, 0, mask));
    }
}

public sealed class ClipMlp : nn.Module<Tensor, Tensor>
{
    private readonly Linear fc1, fc2;
    private readonly string act;

    public ClipMlp(ModelPlacement p, ClipTextConfig c) : base("CLIPMLP")
    {
        fc1 = Layers.Linear(p, c.HiddenSize, c.IntermediateSize);
        fc2 = Layers.Linear(p, c.IntermediateSize, c.HiddenSize);
        act = c.HiddenAct;
        RegisterComponents();
    }

    public override Tensor forward(Tensor x) => fc2.forward(Activations.Apply(act, fc1.forward(x)));
}

public sealed class ClipEncoderLayer : nn.Module
{
    private readonly ClipAttention self_attn;
    private readonly LayerNorm layer_norm1, layer_norm2;
    private readonly ClipMlp mlp;

    public ClipEncoderLayer(ModelPlacement p, ClipTextConfig c) : base("CLIPEncoderLayer")
    {
        self_attn = new ClipAttention(p, c);
        layer_norm1 = Layers.LayerNorm(p, c.HiddenSize, c.LayerNormEps);
        mlp = new ClipMlp(p, c);
        layer_norm2 = Layers.LayerNorm(p, c.HiddenSize, c.LayerNormEps);
        RegisterComponents();
    }

    public Tensor Forward(Tensor x, Tensor mask) => Scoped.Run(() =>
    {
        x = x.Plus(self_attn.Forward(layer_norm1.forward(x), mask));
        return x.Plus(mlp.forward(layer_norm2.forward(x)));
    });
}

public sealed class ClipEncoder : nn.Module
{
    private readonly ModuleList<ClipEncoderLayer> layers = new();

    public ClipEncoder(ModelPlacement p, ClipTextConfig c) : base("CLIPEncoder")
    {
        for (int i = 0; i < c.NumHiddenLayers; i++) layers.Add(new ClipEncoderLayer(p, c));
        RegisterComponents();
    }

    public IEnumerable<ClipEncoderLayer> Layers => layers;
}

public sealed class ClipTextTransformer : nn.Module
{
    private readonly ClipTextEmbeddings embeddings;
    private readonly ClipEncoder encoder;
    private readonly LayerNorm final_layer_norm;

    public ClipTextTransformer(ModelPlacement p, ClipTextConfig c) : base("CLIPTextTransformer")
    {
        embeddings = new ClipTextEmbeddings(p, c);
        encoder = new ClipEncoder(p, c);
        final_layer_norm = Layers.LayerNorm(p, c.HiddenSize, c.LayerNormEps);
        RegisterComponents();
    }

    internal ClipTextEmbeddings Embeddings => embeddings;
    internal ClipEncoder Encoder => encoder;
    internal LayerNorm FinalLayerNorm => final_layer_norm;
}

/// <summary>
/// transformers' <c>CLIPTextModel</c> (the Stable Diffusion text encoder), built from its config. Keys start with
/// <c>text_model.</c>. Causal self-attention, final layer norm, pooled output at the end-of-text position, and every
/// hidden state (SD 2.x and "clip skip" use the penultimate one).
/// </summary>
public sealed class ClipTextModel : nn.Module
{
    private readonly ClipTextTransformer text_model;

    public ClipTextModel(ClipTextConfig config, ModelPlacement? placement = null) : base("CLIPTextModel")
    {
        config.Validate("text_encoder config");
        Config = config;
        text_model = new ClipTextTransformer(placement ?? ModelPlacement.Cpu, config);
        RegisterComponents();
    }

    public ClipTextConfig Config { get; }

    public ScalarType DType => parameters().First().dtype;

    public Device Device => parameters().First().device;

    /// <summary>
    /// Encodes <paramref name="inputIds"/> [B, L] (no attention mask, as SD pipelines call it).
    /// <paramref name="stopAtLayer"/> (1-based count of layers to run) lets callers skip the last layers for clip skip;
    /// null runs all of them.
    /// </summary>
    public ClipTextOutput Forward(Tensor inputIds, int? stopAtLayer = null)
    {
        var ids = inputIds.to(ScalarType.Int64).to(Device);
        long l = ids.shape[1];
        var x = text_model.Embeddings.forward(ids);
        var mask = torch.full(l, l, float.NegativeInfinity, dtype: x.dtype, device: x.device).triu(1);
        var hidden = new List<Tensor> { x };
        int run = stopAtLayer ?? Config.NumHiddenLayers;
        int i = 0;
        foreach (var layer in text_model.Encoder.Layers)
        {
            if (i++ >= run) break;
            x = layer.Forward(x, mask);
            hidden.Add(x);
        }
        var last = text_model.FinalLayerNorm.forward(x);
        // transformers: eos_token_id == 2 (every SD checkpoint) selects the legacy rule, the first maximum of the ids
        var index = Config.EosTokenId == 2 ? ids.argmax(-1) : ids.eq(Config.EosTokenId).to(ScalarType.Int32).argmax(-1);
        var pooled = last[torch.arange(last.shape[0], device: last.device), index];
        return new ClipTextOutput(last, pooled, hidden, index);
    }

    /// <summary>Applies the final layer norm to a hidden state (what diffusers does to a clip-skipped hidden state).</summary>
    public Tensor FinalLayerNorm(Tensor hidden) => text_model.FinalLayerNorm.forward(hidden);
}
