using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace DreamBooth.Models.Common;

#pragma warning disable IDE1006 // field names are the PyTorch attribute names, so state-dict keys match diffusers

/// <summary>diffusers' <c>ResnetBlock2D</c> (time-embedding shift "default", 3×3 convs, 1×1 shortcut when channels change).</summary>
public sealed class ResnetBlock2D : nn.Module
{
    private readonly GroupNorm norm1, norm2;
    private readonly Conv2d conv1, conv2;
    private readonly Linear? time_emb_proj;
    private readonly Conv2d? conv_shortcut;
    private readonly string act;
    private readonly double outputScale;

    public ResnetBlock2D(ModelPlacement p, int inChannels, int outChannels, int? tembChannels, int groups, double eps,
        string act = "silu", double outputScaleFactor = 1.0) : base("ResnetBlock2D")
    {
        norm1 = Layers.GroupNorm(p, groups, inChannels, eps);
        conv1 = Layers.Conv(p, inChannels, outChannels, 3, 1, 1);
        if (tembChannels is int t) time_emb_proj = Layers.Linear(p, t, outChannels);
        norm2 = Layers.GroupNorm(p, groups, outChannels, eps);
        conv2 = Layers.Conv(p, outChannels, outChannels, 3, 1, 1);
        if (inChannels != outChannels) conv_shortcut = Layers.Conv(p, inChannels, outChannels, 1);
        this.act = act;
        outputScale = outputScaleFactor;
        RegisterComponents();
    }

    public Tensor Forward(Tensor x, Tensor? temb) => Scoped.Run(() => ForwardCore(x, temb));

    Tensor ForwardCore(Tensor x, Tensor? temb)
    {
        var h = conv1.forward(Activations.Apply(act, norm1.forward(x)));
        if (time_emb_proj is not null && temb is not null)
        {
            var t = time_emb_proj.forward(Activations.Apply(act, temb));
            h = h.Plus(t.unsqueeze(-1).unsqueeze(-1));
        }
        h = conv2.forward(Activations.Apply(act, norm2.forward(h)));
        var shortcut = conv_shortcut is null ? x : conv_shortcut.forward(x);
        var o = shortcut.Plus(h);
        return outputScale == 1.0 ? o : o / outputScale;
    }
}

/// <summary>diffusers' <c>Downsample2D</c> with a strided 3×3 conv. padding 0 means the VAE's asymmetric (0,1,0,1) pad.</summary>
public sealed class Downsample2D : nn.Module<Tensor, Tensor>
{
    private readonly Conv2d conv;
    private readonly int padding;

    public Downsample2D(ModelPlacement p, int channels, int padding) : base("Downsample2D")
    {
        conv = Layers.Conv(p, channels, channels, 3, 2, padding);
        this.padding = padding;
        RegisterComponents();
    }

    public override Tensor forward(Tensor x)
    {
        if (padding == 0) x = nn.functional.pad(x, new long[] { 0, 1, 0, 1 }, PaddingModes.Constant, 0);
        return conv.forward(x);
    }
}

/// <summary>diffusers' <c>Upsample2D</c>: nearest-neighbour ×2 (or to an explicit size), then a 3×3 conv.</summary>
public sealed class Upsample2D : nn.Module
{
    private readonly Conv2d conv;

    public Upsample2D(ModelPlacement p, int channels) : base("Upsample2D")
    {
        conv = Layers.Conv(p, channels, channels, 3, 1, 1);
        RegisterComponents();
    }

    public Tensor Forward(Tensor x, long[]? size = null)
    {
        var dtype = x.dtype;
        // nearest upsampling of bfloat16 is not supported by every backend: do it in float32 as diffusers does
        if (dtype == ScalarType.BFloat16) x = x.to(ScalarType.Float32);
        x = size is null
            ? nn.functional.interpolate(x, scale_factor: [2.0, 2.0], mode: InterpolationMode.Nearest)
            : nn.functional.interpolate(x, size: size, mode: InterpolationMode.Nearest);
        if (dtype == ScalarType.BFloat16) x = x.to(dtype);
        return conv.forward(x);
    }
}
