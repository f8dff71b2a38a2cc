using DreamBooth.Models.Common;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace DreamBooth.Models.Unet;

#pragma warning disable IDE1006 // field names are the PyTorch attribute names, so state-dict keys match diffusers

/// <summary>diffusers' GEGLU projection: <c>proj</c> to 2×inner, then <c>h · gelu(gate)</c>.</summary>
public sealed class GEGLU : nn.Module<Tensor, Tensor>
{
    private readonly Linear proj;

    public GEGLU(ModelPlacement p, int dimIn, int dimOut) : base("GEGLU")
    {
        proj = Layers.Linear(p, dimIn, dimOut * 2);
        RegisterComponents();
    }

    public override Tensor forward(Tensor x)
    {
        var both = proj.forward(x).chunk(2, -1);
        return both[0] * nn.functional.gelu(both[1]);
    }
}

/// <summary>diffusers' <c>FeedForward</c> with GEGLU: keys <c>net.0.proj</c>, <c>net.2</c>.</summary>
public sealed class FeedForward : nn.Module<Tensor, Tensor>
{
    private readonly ModuleList<nn.Module<Tensor, Tensor>> net;

    public FeedForward(ModelPlacement p, int dim, int mult = 4) : base("FeedForward")
    {
        int inner = dim * mult;
        net = new ModuleList<nn.Module<Tensor, Tensor>>(new GEGLU(p, dim, inner), nn.Identity(), Layers.Linear(p, inner, dim));
        RegisterComponents();
    }

    public override Tensor forward(Tensor x) => net[2].forward(net[0].forward(x));
}

/// <summary>diffusers' <c>BasicTransformerBlock</c>: self-attention, cross-attention, GEGLU feed-forward, pre-LayerNorm each.</summary>
public sealed class BasicTransformerBlock : nn.Module
{
    private readonly LayerNorm norm1, norm2, norm3;
    private readonly Attention attn1, attn2;
    private readonly FeedForward ff;

    public BasicTransformerBlock(ModelPlacement p, int dim, int heads, int dimHead, int crossDim, bool upcast, AttentionOptions options) : base("BasicTransformerBlock")
    {
        norm1 = Layers.LayerNorm(p, dim, 1e-5);
        attn1 = new Attention(p, dim, null, heads, dimHead, false, upcast, options);
        norm2 = Layers.LayerNorm(p, dim, 1e-5);
        attn2 = new Attention(p, dim, crossDim, heads, dimHead, false, upcast, options);
        norm3 = Layers.LayerNorm(p, dim, 1e-5);
        ff = new FeedForward(p, dim);
        RegisterComponents();
    }

    public Tensor Forward(Tensor x, Tensor context) => Scoped.Run(() =>
    {
        x = attn1.Forward(norm1.forward(x)).Plus(x);
        x = attn2.Forward(norm2.forward(x), context).Plus(x);
        x = ff.forward(norm3.forward(x)).Plus(x);
        return x;
    });
}

/// <summary>diffusers' <c>Transformer2DModel</c> for continuous inputs (GroupNorm, proj_in conv or linear, blocks, proj_out, residual).</summary>
public sealed class Transformer2DModel : nn.Module
{
    private readonly GroupNorm norm;
    private readonly nn.Module<Tensor, Tensor> proj_in, proj_out;
    private readonly ModuleList<BasicTransformerBlock> transformer_blocks;
    private readonly bool linear;

    public Transformer2DModel(ModelPlacement p, int heads, int dimHead, int inChannels, int layers, int groups, int crossDim,
        bool useLinearProjection, bool upcast, AttentionOptions options) : base("Transformer2DModel")
    {
        int inner = heads * dimHead;
        norm = Layers.GroupNorm(p, groups, inChannels, 1e-6);
        linear = useLinearProjection;
        proj_in = linear ? Layers.Linear(p, inChannels, inner) : Layers.Conv(p, inChannels, inner, 1);
        transformer_blocks = new ModuleList<BasicTransformerBlock>();
        for (int i = 0; i < layers; i++)
            transformer_blocks.Add(new BasicTransformerBlock(p, inner, heads, dimHead, crossDim, upcast, options));
        proj_out = linear ? Layers.Linear(p, inner, inChannels) : Layers.Conv(p, inner, inChannels, 1);
        RegisterComponents();
    }

    public Tensor Forward(Tensor x, Tensor context) => Scoped.Run(() => ForwardCore(x, context));

    Tensor ForwardCore(Tensor x, Tensor context)
    {
        long b = x.shape[0], h = x.shape[2], w = x.shape[3];
        var residual = x;
        var hidden = norm.forward(x);
        long inner;
        if (!linear)
        {
            hidden = proj_in.forward(hidden);
            inner = hidden.shape[1];
            hidden = hidden.permute(0, 2, 3, 1).reshape(b, h * w, inner);
        }
        else
        {
            hidden = hidden.permute(0, 2, 3, 1).reshape(b, h * w, hidden.shape[1]);
            hidden = proj_in.forward(hidden);
            inner = hidden.shape[2];
        }
        foreach (var block in transformer_blocks)
            hidden = block.Forward(hidden, context);
        if (!linear)
        {
            hidden = hidden.reshape(b, h, w, inner).permute(0, 3, 1, 2).contiguous();
            hidden = proj_out.forward(hidden);
        }
        else
        {
            hidden = proj_out.forward(hidden);
            hidden = hidden.reshape(b, h, w, hidden.shape[2]).permute(0, 3, 1, 2).contiguous();
        }
        return hidden.Plus(residual);
    }
}
