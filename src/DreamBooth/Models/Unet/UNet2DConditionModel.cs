using DreamBooth.Models.Common;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace DreamBooth.Models.Unet;

#pragma warning disable IDE1006 // field names are the PyTorch attribute names, so state-dict keys match diffusers

/// <summary>
/// diffusers' <c>UNet2DConditionModel</c> for Stable Diffusion 1.x / 2.x, built only from its config.
/// State-dict keys are identical to diffusers' (<c>down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_q.weight</c>…).
/// </summary>
public sealed class UNet2DConditionModel : nn.Module
{
    private readonly Conv2d conv_in, conv_out;
    private readonly TimestepEmbedding time_embedding;
    private readonly ModuleList<DownBlock> down_blocks = new();
    private readonly UNetMidBlock2DCrossAttn? mid_block;
    private readonly ModuleList<UpBlock> up_blocks = new();
    private readonly GroupNorm conv_norm_out;

    public UNet2DConditionModel(UNet2DConditionConfig config, ModelPlacement? placement = null, AttentionOptions? attention = null)
        : base("UNet2DConditionModel")
    {
        config.Validate("unet config");
        Config = config;
        Attention = attention ?? new AttentionOptions();
        var p = placement ?? ModelPlacement.Cpu;
        var boc = config.BlockOutChannels;
        int n = boc.Length;
        var heads = config.HeadsPerBlock;
        var tlayers = config.TransformerLayers;
        int timeDim = config.TimeEmbeddingDim ?? boc[0] * 4;

        conv_in = Layers.Conv(p, config.InChannels, boc[0], config.ConvInKernel, 1, (config.ConvInKernel - 1) / 2);
        time_embedding = new TimestepEmbedding(p, boc[0], timeDim, config.TimeEmbeddingActFn ?? config.ActFn);

        int output = boc[0];
        for (int i = 0; i < n; i++)
        {
            int input = output;
            output = boc[i];
            var spec = new BlockSpec(p, input, output, 0, timeDim, config.LayersPerBlock, tlayers[i], heads[i],
                config.CrossAttentionDim, config.NormNumGroups, config.NormEps, config.ActFn, i < n - 1,
                config.DownsamplePadding, config.UseLinearProjection, config.UpcastAttention, Attention);
            down_blocks.Add(new CrossAttnDownBlock2D(spec, config.DownBlockTypes[i] == "CrossAttnDownBlock2D"));
        }

        if (config.MidBlockType is not null)
        {
            var spec = new BlockSpec(p, boc[^1], boc[^1], 0, timeDim, 1, tlayers[^1], heads[^1], config.CrossAttentionDim,
                config.NormNumGroups, config.NormEps, config.ActFn, false, 0, config.UseLinearProjection, config.UpcastAttention, Attention);
            mid_block = new UNetMidBlock2DCrossAttn(spec, config.MidBlockScaleFactor);
        }

        var rev = boc.Reverse().ToArray();
        var revHeads = heads.Reverse().ToArray();
        var revLayers = tlayers.Reverse().ToArray();
        output = rev[0];
        for (int i = 0; i < n; i++)
        {
            int prev = output;
            output = rev[i];
            int input = rev[Math.Min(i + 1, n - 1)];
            var spec = new BlockSpec(p, input, output, prev, timeDim, config.LayersPerBlock + 1, revLayers[i], revHeads[i],
                config.CrossAttentionDim, config.NormNumGroups, config.NormEps, config.ActFn, i < n - 1, 0,
                config.UseLinearProjection, config.UpcastAttention, Attention);
            up_blocks.Add(new CrossAttnUpBlock2D(spec, config.UpBlockTypes[i] == "CrossAttnUpBlock2D"));
        }

        conv_norm_out = Layers.GroupNorm(p, config.NormNumGroups, boc[0], config.NormEps);
        conv_out = Layers.Conv(p, boc[0], config.OutChannels, config.ConvOutKernel, 1, (config.ConvOutKernel - 1) / 2);
        RegisterComponents();
    }

    public UNet2DConditionConfig Config { get; }

    /// <summary>Attention settings (slicing) shared by every attention layer; may be changed between calls.</summary>
    public AttentionOptions Attention { get; }

    /// <summary>The dtype of the parameters.</summary>
    public ScalarType DType => conv_in.weight!.dtype;

    public Device Device => conv_in.weight!.device;

    /// <summary>
    /// Recompute resnet / transformer activations in backward instead of storing them (less memory, ~30% more compute),
    /// as diffusers' <c>enable_gradient_checkpointing</c>. Only active in training mode with gradients enabled.
    /// </summary>
    public bool GradientCheckpointing
    {
        get => gradientCheckpointing;
        set
        {
            gradientCheckpointing = value;
            SetCheckpoint(value ? (fn, module, inputs) => GradientCheckpoint.Run(fn, LoraParameters.WithAdapters(module), inputs) : null);
        }
    }

    private bool gradientCheckpointing;

    void SetCheckpoint(Func<Func<Tensor[], Tensor>, nn.Module, Tensor[], Tensor>? checkpoint)
    {
        foreach (var b in down_blocks) b.Checkpoint = checkpoint;
        if (mid_block is not null) mid_block.Checkpoint = checkpoint;
        foreach (var b in up_blocks) b.Checkpoint = checkpoint;
    }

    /// <summary>Optional observer of top-level submodule outputs (name, tensor) — used by parity diagnostics.</summary>
    public Action<string, Tensor>? Observer { get; set; }

    /// <summary>
    /// Predicts the noise (or v, or x0 — whatever the model was trained for) for <paramref name="sample"/> [B, C, H, W]
    /// at <paramref name="timestep"/> (a scalar or one per batch element, integer or fractional) given
    /// <paramref name="encoderHiddenStates"/> [B, S, cross_attention_dim].
    /// </summary>
    public Tensor Forward(Tensor sample, Tensor timestep, Tensor encoderHiddenStates)
    {
        long batch = sample.shape[0];
        var t = timestep.to(sample.device);
        if (t.dim() == 0) t = t.expand(batch);
        else if (t.shape[0] == 1 && batch > 1) t = t.expand(batch);
        int levels = up_blocks.Count - 1;
        bool needSize = sample.shape[2] % (1 << levels) != 0 || sample.shape[3] % (1 << levels) != 0;

        if (Config.CenterInputSample) sample = 2 * sample - 1.0;
        var tproj = TimestepFeatures.Sinusoidal(t, Config.BlockOutChannels[0], Config.FlipSinToCos, Config.FreqShift);
        Observer?.Invoke("time_proj", tproj);
        var emb = time_embedding.forward(tproj.to(DType));
        Observer?.Invoke("time_embedding", emb);
        var context = encoderHiddenStates.to(DType);

        var x = conv_in.forward(sample.to(DType));
        Observer?.Invoke("conv_in", x);
        var skips = new List<Tensor> { x };
        for (int i = 0; i < down_blocks.Count; i++)
        {
            var (o, s) = down_blocks[i].Forward(x, emb, context);
            x = o;
            skips.AddRange(s);
            Observer?.Invoke($"down_blocks.{i}", x);
        }
        if (mid_block is not null)
        {
            x = mid_block.Forward(x, emb, context);
            Observer?.Invoke("mid_block", x);
        }
        int perBlock = Config.LayersPerBlock + 1;
        for (int i = 0; i < up_blocks.Count; i++)
        {
            var mine = skips.GetRange(skips.Count - perBlock, perBlock);
            skips.RemoveRange(skips.Count - perBlock, perBlock);
            long[]? size = needSize && i < up_blocks.Count - 1 ? [skips[^1].shape[2], skips[^1].shape[3]] : null;
            x = up_blocks[i].Forward(x, mine, emb, context, size);
            Observer?.Invoke($"up_blocks.{i}", x);
        }
        x = conv_norm_out.forward(x);
        Observer?.Invoke("conv_norm_out", x);
        x = conv_out.forward(Activations.Apply(Config.ActFn, x));
        Observer?.Invoke("conv_out", x);
        return x;
    }
}
