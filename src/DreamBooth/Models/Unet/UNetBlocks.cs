using DreamBooth.Models.Common;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace DreamBooth.Models.Unet;

#pragma warning disable IDE1006 // field names are the PyTorch attribute names, so state-dict keys match diffusers

/// <summary>What every UNet block needs to build itself (from <see cref="UNet2DConditionConfig"/>).</summary>
internal sealed record BlockSpec(
    ModelPlacement P, int InChannels, int OutChannels, int PrevOutputChannels, int TembChannels, int NumLayers,
    int TransformerLayers, int Heads, int CrossDim, int Groups, double Eps, string Act, bool AddSample,
    int DownsamplePadding, bool UseLinearProjection, bool UpcastAttention, AttentionOptions Attention);

/// <summary>Base of the UNet's down / mid / up blocks: runs sub-layers, through gradient checkpointing when enabled.</summary>
public abstract class UNetBlock : nn.Module
{
    protected UNetBlock(string name) : base(name) { }

    /// <summary>Set by <see cref="UNet2DConditionModel.GradientCheckpointing"/>.</summary>
    internal Func<Func<Tensor[], Tensor>, nn.Module, Tensor[], Tensor>? Checkpoint { get; set; }

    protected Tensor Resnet(ResnetBlock2D r, Tensor x, Tensor temb) =>
        Checkpoint is { } ck && training && torch.is_grad_enabled()
            ? ck(a => r.Forward(a[0], a[1]), r, [x, temb])
            : r.Forward(x, temb);

    protected Tensor Attn(Transformer2DModel t, Tensor x, Tensor context) =>
        Checkpoint is { } ck && training && torch.is_grad_enabled()
            ? ck(a => t.Forward(a[0], a[1]), t, [x, context])
            : t.Forward(x, context);
}

/// <summary>A down block: returns its output and the skip tensors it hands to the up path.</summary>
public abstract class DownBlock : UNetBlock
{
    protected DownBlock(string name) : base(name) { }
    public abstract (Tensor Output, List<Tensor> Skips) Forward(Tensor x, Tensor temb, Tensor context);
}

/// <summary>An up block: consumes skip tensors (last first).</summary>
public abstract class UpBlock : UNetBlock
{
    protected UpBlock(string name) : base(name) { }
    public abstract Tensor Forward(Tensor x, List<Tensor> skips, Tensor temb, Tensor context, long[]? upsampleSize);
}

/// <summary>diffusers' <c>CrossAttnDownBlock2D</c> / <c>DownBlock2D</c> (the latter has no attentions).</summary>
public sealed class CrossAttnDownBlock2D : DownBlock
{
    private readonly ModuleList<ResnetBlock2D> resnets = new();
    private readonly ModuleList<Transformer2DModel>? attentions;
    private readonly ModuleList<Downsample2D>? downsamplers;

    internal CrossAttnDownBlock2D(BlockSpec s, bool withAttention) : base(withAttention ? "CrossAttnDownBlock2D" : "DownBlock2D")
    {
        if (withAttention) attentions = new ModuleList<Transformer2DModel>();
        for (int i = 0; i < s.NumLayers; i++)
        {
            int cin = i == 0 ? s.InChannels : s.OutChannels;
            resnets.Add(new ResnetBlock2D(s.P, cin, s.OutChannels, s.TembChannels, s.Groups, s.Eps, s.Act));
            attentions?.Add(new Transformer2DModel(s.P, s.Heads, s.OutChannels / s.Heads, s.OutChannels, s.TransformerLayers,
                s.Groups, s.CrossDim, s.UseLinearProjection, s.UpcastAttention, s.Attention));
        }
        if (s.AddSample) downsamplers = new ModuleList<Downsample2D>(new Downsample2D(s.P, s.OutChannels, s.DownsamplePadding));
        RegisterComponents();
    }

    public override (Tensor Output, List<Tensor> Skips) Forward(Tensor x, Tensor temb, Tensor context)
    {
        var skips = new List<Tensor>();
        for (int i = 0; i < resnets.Count; i++)
        {
            x = Resnet(resnets[i], x, temb);
            if (attentions is not null) x = Attn(attentions[i], x, context);
            skips.Add(x);
        }
        if (downsamplers is not null)
        {
            x = downsamplers[0].forward(x);
            skips.Add(x);
        }
        return (x, skips);
    }
}

/// <summary>diffusers' <c>UNetMidBlock2DCrossAttn</c>: resnet, then (attention, resnet) per layer.</summary>
public sealed class UNetMidBlock2DCrossAttn : UNetBlock
{
    private readonly ModuleList<ResnetBlock2D> resnets = new();
    private readonly ModuleList<Transformer2DModel> attentions = new();

    internal UNetMidBlock2DCrossAttn(BlockSpec s, double outputScale) : base("UNetMidBlock2DCrossAttn")
    {
        resnets.Add(new ResnetBlock2D(s.P, s.InChannels, s.InChannels, s.TembChannels, s.Groups, s.Eps, s.Act, outputScale));
        for (int i = 0; i < s.NumLayers; i++)
        {
            attentions.Add(new Transformer2DModel(s.P, s.Heads, s.InChannels / s.Heads, s.InChannels, s.TransformerLayers,
                s.Groups, s.CrossDim, s.UseLinearProjection, s.UpcastAttention, s.Attention));
            resnets.Add(new ResnetBlock2D(s.P, s.InChannels, s.InChannels, s.TembChannels, s.Groups, s.Eps, s.Act, outputScale));
        }
        RegisterComponents();
    }

    public Tensor Forward(Tensor x, Tensor temb, Tensor context)
    {
        x = Resnet(resnets[0], x, temb);
        for (int i = 0; i < attentions.Count; i++)
        {
            x = Attn(attentions[i], x, context);
            x = Resnet(resnets[i + 1], x, temb);
        }
        return x;
    }
}

/// <summary>diffusers' <c>CrossAttnUpBlock2D</c> / <c>UpBlock2D</c>.</summary>
public sealed class CrossAttnUpBlock2D : UpBlock
{
    private readonly ModuleList<ResnetBlock2D> resnets = new();
    private readonly ModuleList<Transformer2DModel>? attentions;
    private readonly ModuleList<Upsample2D>? upsamplers;

    internal CrossAttnUpBlock2D(BlockSpec s, bool withAttention) : base(withAttention ? "CrossAttnUpBlock2D" : "UpBlock2D")
    {
        if (withAttention) attentions = new ModuleList<Transformer2DModel>();
        for (int i = 0; i < s.NumLayers; i++)
        {
            int skip = i == s.NumLayers - 1 ? s.InChannels : s.OutChannels;
            int cin = i == 0 ? s.PrevOutputChannels : s.OutChannels;
            resnets.Add(new ResnetBlock2D(s.P, cin + skip, s.OutChannels, s.TembChannels, s.Groups, s.Eps, s.Act));
            attentions?.Add(new Transformer2DModel(s.P, s.Heads, s.OutChannels / s.Heads, s.OutChannels, s.TransformerLayers,
                s.Groups, s.CrossDim, s.UseLinearProjection, s.UpcastAttention, s.Attention));
        }
        if (s.AddSample) upsamplers = new ModuleList<Upsample2D>(new Upsample2D(s.P, s.OutChannels));
        RegisterComponents();
    }

    public override Tensor Forward(Tensor x, List<Tensor> skips, Tensor temb, Tensor context, long[]? upsampleSize)
    {
        for (int i = 0; i < resnets.Count; i++)
        {
            var skip = skips[^1];
            skips.RemoveAt(skips.Count - 1);
            x = torch.cat([x, skip], 1);
            x = Resnet(resnets[i], x, temb);
            if (attentions is not null) x = Attn(attentions[i], x, context);
        }
        if (upsamplers is not null) x = upsamplers[0].Forward(x, upsampleSize);
        return x;
    }
}
