using DreamBooth.Models.Clip;
using DreamBooth.Models.Unet;
using DreamBooth.Models.Vae;
using DreamBooth.Sampling;

namespace DreamBooth.TinyWorld.Pretraining;

/// <summary>The diffusers/transformers configs of the tiny model's three networks, derived from a <see cref="PretrainOptions"/>.</summary>
public static class TinyModelConfigs
{
    /// <summary>Image side the tiny world renders and the model generates.</summary>
    public const int ImageSize = 64;

    /// <summary>
    /// The noise schedule the UNet is trained with and that the exported <c>scheduler_config.json</c> holds: SD 1.x's
    /// (PNDM, scaled-linear β 0.00085…0.012, ε) or, with <see cref="PretrainOptions.ZeroTerminalSnr"/>, the same β rescaled
    /// to zero terminal SNR in a DDIM config with trailing timesteps (what diffusers documents for such models).
    /// </summary>
    public static SchedulerConfig Scheduler(PretrainOptions o) => o.ZeroTerminalSnr
        ? SchedulerConfig.StableDiffusion with
        {
            ClassName = "DDIMScheduler", PredictionType = o.Prediction, RescaleBetasZeroSnr = true,
            TimestepSpacing = TimestepSpacing.Trailing, StepsOffset = 0, SkipPrkSteps = false,
        }
        : SchedulerConfig.StableDiffusion with { PredictionType = o.Prediction };

    /// <summary>AutoencoderKL with three DownEncoderBlock2D levels (64×64×3 ↔ 16×16×4), as SD's KL-f8 but 4× and narrow.</summary>
    public static AutoencoderKLConfig Vae(PretrainOptions o, double scalingFactor = 1.0) => new()
    {
        DiffusersVersion = "0.27.2",
        BlockOutChannels = o.VaeChannels.ToArray(),
        DownBlockTypes = Enumerable.Repeat("DownEncoderBlock2D", o.VaeChannels.Length).ToArray(),
        UpBlockTypes = Enumerable.Repeat("UpDecoderBlock2D", o.VaeChannels.Length).ToArray(),
        LayersPerBlock = o.VaeLayersPerBlock,
        LatentChannels = 4,
        NormNumGroups = o.VaeNormGroups,
        SampleSize = ImageSize,
        ScalingFactor = scalingFactor,
        ForceUpcast = true,
    };

    /// <summary>CLIPTextModel over the real CLIP vocabulary (49408 ids, 77 positions, quick_gelu, eos_token_id 2 as in SD 1.x).</summary>
    public static ClipTextConfig TextEncoder(PretrainOptions o) => new()
    {
        Architectures = ["CLIPTextModel"],
        ModelType = "clip_text_model",
        VocabSize = 49408,
        HiddenSize = o.TextHiddenSize,
        IntermediateSize = o.TextIntermediateSize,
        ProjectionDim = o.TextHiddenSize,
        NumHiddenLayers = o.TextLayers,
        NumAttentionHeads = o.TextHeads,
        MaxPositionEmbeddings = 77,
        HiddenAct = "quick_gelu",
        PadTokenId = 1,
        BosTokenId = 0,
        EosTokenId = 2,
        TorchDType = "float16",
        TransformersVersion = "4.40.0",
    };

    /// <summary>UNet2DConditionModel on 16×16×4 latents: cross-attention blocks on every level but the last (SD's layout).</summary>
    public static UNet2DConditionConfig Unet(PretrainOptions o)
    {
        int n = o.UnetChannels.Length;
        return new UNet2DConditionConfig
        {
            DiffusersVersion = "0.27.2",
            SampleSize = ImageSize / 4,
            InChannels = 4,
            OutChannels = 4,
            BlockOutChannels = o.UnetChannels.ToArray(),
            DownBlockTypes = Enumerable.Range(0, n).Select(i => i < n - 1 ? "CrossAttnDownBlock2D" : "DownBlock2D").ToArray(),
            UpBlockTypes = Enumerable.Range(0, n).Select(i => i == 0 ? "UpBlock2D" : "CrossAttnUpBlock2D").ToArray(),
            MidBlockType = "UNetMidBlock2DCrossAttn",
            LayersPerBlock = 1,
            NormNumGroups = o.UnetNormGroups,
            CrossAttentionDim = o.TextHiddenSize,
            AttentionHeadDim = new Models.Common.IntOrList(o.UnetHeads),
        };
    }
}
