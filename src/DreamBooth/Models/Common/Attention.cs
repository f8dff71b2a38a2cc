using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace DreamBooth.Models.Common;

#pragma warning disable IDE1006 // field names are the PyTorch attribute names, so state-dict keys match diffusers

/// <summary>
/// diffusers' <c>Attention</c> (to_q, to_k, to_v, to_out.0, optional group_norm + residual for the VAE).
/// Computed with <c>scaled_dot_product_attention</c>, or in slices when <see cref="AttentionOptions.SliceSize"/> is set.
/// <c>upcast_attention</c> computes the scores in float32 when the model runs in half precision.
/// </summary>
public sealed class Attention : nn.Module, ILoraTarget
{
    private readonly Linear to_q, to_k, to_v;
    private readonly ModuleList<nn.Module<Tensor, Tensor>> to_out;
    private readonly GroupNorm? group_norm;
    private readonly int heads;
    private readonly bool residual, upcast;
    private readonly AttentionOptions options;
    private readonly Dictionary<string, LoraAdapter> adapters = new(StringComparer.Ordinal);

    public Attention(ModelPlacement p, int queryDim, int? crossDim, int heads, int dimHead, bool qkvBias, bool upcast,
        AttentionOptions options, int? normGroups = null, double normEps = 1e-6, bool residual = false) : base("Attention")
    {
        int inner = heads * dimHead;
        int kvDim = crossDim ?? queryDim;
        to_q = Layers.Linear(p, queryDim, inner, qkvBias);
        to_k = Layers.Linear(p, kvDim, inner, qkvBias);
        to_v = Layers.Linear(p, kvDim, inner, qkvBias);
        to_out = new ModuleList<nn.Module<Tensor, Tensor>>(Layers.Linear(p, inner, queryDim, true), nn.Identity());
        if (normGroups is int g) group_norm = Layers.GroupNorm(p, g, queryDim, normEps);
        this.heads = heads;
        this.residual = residual;
        this.upcast = upcast;
        this.options = options;
        RegisterComponents();
    }

    /// <summary>Attention over tokens: <paramref name="x"/> [B, L, C], <paramref name="context"/> [B, S, Ck] or null (self-attention).</summary>
    public Tensor Forward(Tensor x, Tensor? context = null) => Scoped.Run(() => ForwardCore(x, context));

    Tensor ForwardCore(Tensor x, Tensor? context)
    {
        var q = LoraProjection.Apply(to_q, adapters.GetValueOrDefault("to_q"), x);
        var ctx = context ?? x;
        var k = LoraProjection.Apply(to_k, adapters.GetValueOrDefault("to_k"), ctx);
        var v = LoraProjection.Apply(to_v, adapters.GetValueOrDefault("to_v"), ctx);
        var o = AttentionCore.Compute(q, k, v, heads, upcast, options.SliceSize, causalMask: null);
        return LoraProjection.Apply((Linear)to_out[0], adapters.GetValueOrDefault("to_out.0"), o);
    }

    public IReadOnlyList<(string Name, Linear Linear)> LoraProjections => [("to_q", to_q), ("to_k", to_k), ("to_v", to_v), ("to_out.0", (Linear)to_out[0])];

    public IEnumerable<LoraAdapter> AttachedAdapters => adapters.Values;

    public void SetAdapter(string projection, LoraAdapter? adapter)
    {
        if (!LoraProjections.Any(p => p.Name == projection)) throw new ArgumentException($"no projection '{projection}' in this attention layer");
        if (adapter is null) adapters.Remove(projection); else adapters[projection] = adapter;
    }

    /// <summary>The VAE's spatial self-attention: [B, C, H, W] → group norm → attention → + residual.</summary>
    public Tensor ForwardSpatial(Tensor x) => Scoped.Run(() => ForwardSpatialCore(x));

    Tensor ForwardSpatialCore(Tensor x)
    {
        var shape = x.shape;
        long b = shape[0], c = shape[1], h = shape[2], w = shape[3];
        var hidden = group_norm is null ? x : group_norm.forward(x);
        hidden = hidden.view(b, c, h * w).transpose(1, 2);
        hidden = Forward(hidden);
        hidden = hidden.transpose(1, 2).reshape(b, c, h, w);
        return residual ? hidden.Plus(x) : hidden;
    }
}

/// <summary>Multi-head attention maths shared by the UNet, VAE and CLIP attention layers.</summary>
public static class AttentionCore
{
    /// <summary>
    /// q [B, L, H·d], k/v [B, S, H·d] → [B, L, H·d]. Scale 1/√d. <paramref name="causalMask"/> is an additive mask
    /// broadcastable to [B, H, L, S] (or null).
    /// </summary>
    public static Tensor Compute(Tensor q, Tensor k, Tensor v, int heads, bool upcast, int sliceSize, Tensor? causalMask)
    {
        long b = q.shape[0], l = q.shape[1], s = k.shape[1];
        long inner = q.shape[2];
        long d = inner / heads;
        var dtype = q.dtype;
        var qh = q.view(b, l, heads, d).transpose(1, 2);
        var kh = k.view(b, s, heads, d).transpose(1, 2);
        var vh = v.view(b, s, heads, d).transpose(1, 2);
        bool toFloat = upcast && dtype is ScalarType.Float16 or ScalarType.BFloat16;
        if (toFloat)
        {
            qh = qh.to(ScalarType.Float32);
            kh = kh.to(ScalarType.Float32);
            vh = vh.to(ScalarType.Float32);
        }
        Tensor o;
        if (sliceSize <= 0)
        {
            o = nn.functional.scaled_dot_product_attention(qh, kh, vh, causalMask);
        }
        else
        {
            var qf = qh.reshape(b * heads, l, d);
            var kf = kh.reshape(b * heads, s, d);
            var vf = vh.reshape(b * heads, s, d);
            var mask = causalMask?.expand(b, heads, l, s).reshape(b * heads, l, s);
            var parts = new List<Tensor>();
            for (long i = 0; i < b * heads; i += sliceSize)
            {
                long e = Math.Min(b * heads, i + sliceSize);
                using var scope = torch.NewDisposeScope();
                var part = nn.functional.scaled_dot_product_attention(
                    qf[TensorIndex.Slice(i, e)], kf[TensorIndex.Slice(i, e)], vf[TensorIndex.Slice(i, e)],
                    mask?[TensorIndex.Slice(i, e)]);
                parts.Add(part.MoveToOuterDisposeScope());
            }
            o = torch.cat(parts, 0).view(b, heads, l, d);
        }
        if (toFloat) o = o.to(dtype);
        return o.transpose(1, 2).reshape(b, l, inner);
    }
}
