using DreamBooth.Models.Common;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace DreamBooth.Models.Vae;

#pragma warning disable IDE1006 // field names are the PyTorch attribute names, so state-dict keys match diffusers

/// <summary>diffusers' <c>UNetMidBlock2D</c> as used by the VAE: resnet, (spatial self-attention, resnet).</summary>
public sealed class VaeMidBlock : nn.Module<Tensor, Tensor>
{
    private readonly ModuleList<ResnetBlock2D> resnets = new();
    private readonly ModuleList<Attention>? attentions;

    public VaeMidBlock(ModelPlacement p, int channels, int groups, string act, bool addAttention) : base("UNetMidBlock2D")
    {
        resnets.Add(new ResnetBlock2D(p, channels, channels, null, groups, 1e-6, act));
        if (addAttention)
            attentions = new ModuleList<Attention>(new Attention(p, channels, null, 1, channels, true, true, new AttentionOptions(), groups, 1e-6, residual: true));
        resnets.Add(new ResnetBlock2D(p, channels, channels, null, groups, 1e-6, act));
        RegisterComponents();
    }

    public override Tensor forward(Tensor x)
    {
        x = resnets[0].Forward(x, null);
        if (attentions is not null) x = attentions[0].ForwardSpatial(x);
        return resnets[1].Forward(x, null);
    }
}

/// <summary>diffusers' <c>DownEncoderBlock2D</c>.</summary>
public sealed class DownEncoderBlock2D : nn.Module<Tensor, Tensor>
{
    private readonly ModuleList<ResnetBlock2D> resnets = new();
    private readonly ModuleList<Downsample2D>? downsamplers;

    public DownEncoderBlock2D(ModelPlacement p, int cin, int cout, int layers, int groups, string act, bool downsample) : base("DownEncoderBlock2D")
    {
        for (int i = 0; i < layers; i++) resnets.Add(new ResnetBlock2D(p, i == 0 ? cin : cout, cout, null, groups, 1e-6, act));
        if (downsample) downsamplers = new ModuleList<Downsample2D>(new Downsample2D(p, cout, 0));
        RegisterComponents();
    }

    public override Tensor forward(Tensor x)
    {
        foreach (var r in resnets) x = r.Forward(x, null);
        return downsamplers is null ? x : downsamplers[0].forward(x);
    }
}

/// <summary>diffusers' <c>UpDecoderBlock2D</c>.</summary>
public sealed class UpDecoderBlock2D : nn.Module<Tensor, Tensor>
{
    private readonly ModuleList<ResnetBlock2D> resnets = new();
    private readonly ModuleList<Upsample2D>? upsamplers;

    public UpDecoderBlock2D(ModelPlacement p, int cin, int cout, int layers, int groups, string act, bool upsample) : base("UpDecoderBlock2D")
    {
        for (int i = 0; i < layers; i++) resnets.Add(new ResnetBlock2D(p, i == 0 ? cin : cout, cout, null, groups, 1e-6, act));
        if (upsample) upsamplers = new ModuleList<Upsample2D>(new Upsample2D(p, cout));
        RegisterComponents();
    }

    public override Tensor forward(Tensor x)
    {
        foreach (var r in resnets) x = r.Forward(x, null);
        return upsamplers is null ? x : upsamplers[0].Forward(x);
    }
}

/// <summary>The VAE encoder (image → 2·latent moments).</summary>
public sealed class VaeEncoder : nn.Module<Tensor, Tensor>
{
    private readonly Conv2d conv_in, conv_out;
    private readonly ModuleList<DownEncoderBlock2D> down_blocks = new();
    private readonly VaeMidBlock mid_block;
    private readonly GroupNorm conv_norm_out;
    private readonly string act;

    public VaeEncoder(ModelPlacement p, AutoencoderKLConfig c) : base("Encoder")
    {
        var boc = c.BlockOutChannels;
        conv_in = Layers.Conv(p, c.InChannels, boc[0], 3, 1, 1);
        int output = boc[0];
        for (int i = 0; i < boc.Length; i++)
        {
            int input = output;
            output = boc[i];
            down_blocks.Add(new DownEncoderBlock2D(p, input, output, c.LayersPerBlock, c.NormNumGroups, c.ActFn, i < boc.Length - 1));
        }
        mid_block = new VaeMidBlock(p, boc[^1], c.NormNumGroups, c.ActFn, c.MidBlockAddAttention);
        conv_norm_out = Layers.GroupNorm(p, c.NormNumGroups, boc[^1], 1e-6);
        conv_out = Layers.Conv(p, boc[^1], 2 * c.LatentChannels, 3, 1, 1);
        act = c.ActFn;
        RegisterComponents();
    }

    public Action<string, Tensor>? Observer { get; set; }

    public override Tensor forward(Tensor x)
    {
        x = conv_in.forward(x);
        for (int i = 0; i < down_blocks.Count; i++)
        {
            x = down_blocks[i].forward(x);
            Observer?.Invoke($"encoder.down_blocks.{i}", x);
        }
        x = mid_block.forward(x);
        Observer?.Invoke("encoder.mid_block", x);
        x = conv_out.forward(Activations.Apply(act, conv_norm_out.forward(x)));
        Observer?.Invoke("encoder.conv_out", x);
        return x;
    }
}

/// <summary>The VAE decoder (latent → image).</summary>
public sealed class VaeDecoder : nn.Module<Tensor, Tensor>
{
    private readonly Conv2d conv_in, conv_out;
    private readonly VaeMidBlock mid_block;
    private readonly ModuleList<UpDecoderBlock2D> up_blocks = new();
    private readonly GroupNorm conv_norm_out;
    private readonly string act;

    public VaeDecoder(ModelPlacement p, AutoencoderKLConfig c) : base("Decoder")
    {
        var boc = c.BlockOutChannels;
        conv_in = Layers.Conv(p, c.LatentChannels, boc[^1], 3, 1, 1);
        mid_block = new VaeMidBlock(p, boc[^1], c.NormNumGroups, c.ActFn, c.MidBlockAddAttention);
        var rev = boc.Reverse().ToArray();
        int output = rev[0];
        for (int i = 0; i < rev.Length; i++)
        {
            int prev = output;
            output = rev[i];
            up_blocks.Add(new UpDecoderBlock2D(p, prev, output, c.LayersPerBlock + 1, c.NormNumGroups, c.ActFn, i < rev.Length - 1));
        }
        conv_norm_out = Layers.GroupNorm(p, c.NormNumGroups, boc[0], 1e-6);
        conv_out = Layers.Conv(p, boc[0], c.OutChannels, 3, 1, 1);
        act = c.ActFn;
        RegisterComponents();
    }

    public Action<string, Tensor>? Observer { get; set; }

    public override Tensor forward(Tensor z)
    {
        var x = conv_in.forward(z);
        Observer?.Invoke("decoder.conv_in", x);
        x = mid_block.forward(x);
        Observer?.Invoke("decoder.mid_block", x);
        foreach (var b in up_blocks) x = b.forward(x);
        return conv_out.forward(Activations.Apply(act, conv_norm_out.forward(x)));
    }
}

/// <summary>diffusers' <c>DiagonalGaussianDistribution</c>: the VAE posterior.</summary>
public sealed class DiagonalGaussian
{
    public DiagonalGaussian(Tensor moments)
    {
        var parts = moments.chunk(2, 1);
        Mean = parts[0];
        LogVar = parts[1].clamp(-30.0, 20.0);
        Std = torch.exp(0.5 * LogVar);
        Var = torch.exp(LogVar);
    }

    public Tensor Mean { get; }
    public Tensor LogVar { get; }
    public Tensor Std { get; }
    public Tensor Var { get; }

    /// <summary><c>mean + std · ε</c> with ε drawn from <paramref name="generator"/> (on the CPU, so a seed gives the same latents on every device).</summary>
    public Tensor Sample(Generator? generator = null)
    {
        var eps = torch.randn(Mean.shape, dtype: ScalarType.Float32, device: torch.CPU, generator: generator);
        return Sample(eps.to(Mean.dtype).to(Mean.device));
    }

    /// <summary><c>mean + std · noise</c> with the given noise.</summary>
    public Tensor Sample(Tensor noise) => Mean.Plus(Std * noise);

    public Tensor Mode() => Mean;
}

/// <summary>
/// diffusers' <c>AutoencoderKL</c>. <see cref="Encode"/> gives the posterior, <see cref="Decode"/> maps latents to images in
/// [-1, 1]. Neither applies <see cref="AutoencoderKLConfig.ScalingFactor"/>: pipelines and trainers do.
/// </summary>
public sealed class AutoencoderKL : nn.Module
{
    private readonly VaeEncoder encoder;
    private readonly VaeDecoder decoder;
    private readonly Conv2d? quant_conv, post_quant_conv;

    public AutoencoderKL(AutoencoderKLConfig config, ModelPlacement? placement = null) : base("AutoencoderKL")
    {
        config.Validate("vae config");
        Config = config;
        var p = placement ?? ModelPlacement.Cpu;
        encoder = new VaeEncoder(p, config);
        decoder = new VaeDecoder(p, config);
        int l = config.LatentChannels;
        if (config.UseQuantConv) quant_conv = Layers.Conv(p, 2 * l, 2 * l, 1);
        if (config.UsePostQuantConv) post_quant_conv = Layers.Conv(p, l, l, 1);
        RegisterComponents();
    }

    public AutoencoderKLConfig Config { get; }

    public ScalarType DType => parameters().First().dtype;

    public Device Device => parameters().First().device;

    /// <summary>Optional observer of submodule outputs (name, tensor) — used by parity diagnostics.</summary>
    public Action<string, Tensor>? Observer
    {
        get => encoder.Observer;
        set { encoder.Observer = value is null ? null : (n, t) => value("encode/" + n, t); decoder.Observer = value is null ? null : (n, t) => value("decode/" + n, t); observer = value; }
    }

    private Action<string, Tensor>? observer;

    /// <summary>The decoding half's parameters (post_quant_conv and the decoder), e.g. to fine-tune the decoder alone.</summary>
    public IEnumerable<Parameter> DecoderParameters() =>
        (post_quant_conv?.parameters() ?? []).Concat(decoder.parameters());

    /// <summary>Image [B, 3, H, W] in [-1, 1] → posterior over latents [B, latent_channels, H/f, W/f].</summary>
    public DiagonalGaussian Encode(Tensor image)
    {
        var h = encoder.forward(image.to(DType));
        if (quant_conv is not null) h = quant_conv.forward(h);
        observer?.Invoke("encode/quant_conv", h);
        return new DiagonalGaussian(h);
    }

    /// <summary>Latents → image [B, 3, H, W] (roughly in [-1, 1]).</summary>
    public Tensor Decode(Tensor latents)
    {
        var z = latents.to(DType);
        if (post_quant_conv is not null) z = post_quant_conv.forward(z);
        observer?.Invoke("decode/post_quant_conv", z);
        return decoder.forward(z);
    }
}
