using System.Text.Json;
using DreamBooth.Models.Clip;
using DreamBooth.Models.Unet;
using DreamBooth.Models.Vae;
using DreamBooth.Sampling;
using DreamBooth.Text;
using TorchSharp;
using static TorchSharp.torch;

namespace DreamBooth.Loading;

/// <summary>
/// A loaded Stable Diffusion model: UNet, VAE, text encoder, tokenizer and the scheduler config, on one device and dtype.
/// <see cref="FromPretrained"/> reads a diffusers folder (<c>model_index.json</c>, <c>unet/</c>, <c>vae/</c>,
/// <c>text_encoder/</c>, <c>tokenizer/</c>, <c>scheduler/</c>). Either everything loads or nothing is kept.
/// </summary>
public sealed class StableDiffusionModel : IDisposable
{
    public StableDiffusionModel(UNet2DConditionModel unet, AutoencoderKL vae, ClipTextModel textEncoder, ClipTokenizer tokenizer,
        SchedulerConfig scheduler, string source)
    {
        Unet = unet;
        Vae = vae;
        TextEncoder = textEncoder;
        Tokenizer = tokenizer;
        Scheduler = scheduler;
        Source = source;
        NativeEnvironment.ForModelOfSize(new TorchSharp.torch.nn.Module[] { unet, vae, textEncoder }.Sum(m => m.parameters().Sum(p => p.numel() * p.ElementSize)));
    }

    public UNet2DConditionModel Unet { get; }
    public AutoencoderKL Vae { get; }
    public ClipTextModel TextEncoder { get; }
    public ClipTokenizer Tokenizer { get; }
    public SchedulerConfig Scheduler { get; }

    /// <summary>Where the model came from (folder, file or repo id): shown in PNG metadata as the model name.</summary>
    public string Source { get; }

    public string Name => Path.GetFileName(Source.TrimEnd('/', '\\'));

    public Device Device => Unet.Device;

    public ScalarType DType => Unet.DType;

    /// <summary>Pixels per latent cell (8 for SD).</summary>
    public int VaeScaleFactor => Vae.Config.DownscaleFactor;

    /// <summary>The native resolution (UNet sample_size × VAE factor): 512 for SD 1.x, 768 for SD 2.x-v.</summary>
    public int DefaultResolution => Unet.Config.SampleSize * VaeScaleFactor;

    /// <summary>Folders a diffusers Stable Diffusion pipeline must have.</summary>
    public static readonly string[] RequiredComponents = ["unet", "vae", "text_encoder", "tokenizer", "scheduler"];

    /// <summary>Loads a diffusers folder. <paramref name="variant"/> "fp16" prefers <c>*.fp16.safetensors</c> files.</summary>
    public static StableDiffusionModel FromPretrained(string folder, Device? device = null, ScalarType dtype = ScalarType.Float32, string? variant = null)
    {
        folder = Path.GetFullPath(folder);
        if (File.Exists(folder))
            throw new ModelLoadException(folder, "is a file; FromPretrained expects a diffusers folder (use ModelSource.Load for single-file .safetensors/.ckpt checkpoints)");
        if (!Directory.Exists(folder))
            throw new ModelLoadException(folder, "model folder not found");
        var index = Path.Combine(folder, "model_index.json");
        if (!File.Exists(index))
            throw new ModelLoadException(folder, "not a diffusers model folder: model_index.json is missing (expected model_index.json, unet/, vae/, text_encoder/, tokenizer/, scheduler/)");
        try { using var _ = JsonDocument.Parse(File.ReadAllText(index)); }
        catch (JsonException e) { throw new ModelLoadException(index, $"invalid JSON: {e.Message}", e); }
        var missing = RequiredComponents.Where(c => !Directory.Exists(Path.Combine(folder, c))).ToList();
        if (missing.Count > 0)
            throw new ModelLoadException(folder, $"component folder(s) missing: {string.Join(", ", missing.Select(m => m + "/"))}. A Stable Diffusion folder needs {string.Join(", ", RequiredComponents.Select(m => m + "/"))}");

        var dev = device ?? torch.CPU;
        var tokenizer = ClipTokenizer.FromFolder(Path.Combine(folder, "tokenizer"));
        var schedPath = Path.Combine(folder, "scheduler", "scheduler_config.json");
        if (!File.Exists(schedPath)) throw new ModelLoadException(schedPath, "scheduler_config.json is missing");
        var scheduler = SchedulerConfig.Load(schedPath);
        UNet2DConditionModel? unet = null;
        AutoencoderKL? vae = null;
        ClipTextModel? te = null;
        try
        {
            te = ComponentLoader.LoadTextEncoder(Path.Combine(folder, "text_encoder"), dev, dtype, variant);
            // the VAE runs in float32 unless bf16 was asked for (SD's VAE overflows in fp16: diffusers' force_upcast)
            var vaeDtype = dtype == ScalarType.Float16 ? ScalarType.Float32 : dtype;
            vae = ComponentLoader.LoadVae(Path.Combine(folder, "vae"), dev, vaeDtype, variant);
            unet = ComponentLoader.LoadUnet(Path.Combine(folder, "unet"), dev, dtype, variant);
            if (unet.Config.CrossAttentionDim != te.Config.HiddenSize)
                throw new ModelLoadException(folder, $"unet cross_attention_dim {unet.Config.CrossAttentionDim} does not match text_encoder hidden_size {te.Config.HiddenSize}: the components come from different models");
            if (unet.Config.InChannels != vae.Config.LatentChannels)
                throw new ModelLoadException(folder, $"unet in_channels {unet.Config.InChannels} does not match vae latent_channels {vae.Config.LatentChannels}");
            return new StableDiffusionModel(unet, vae, te, tokenizer, scheduler, folder);
        }
        catch
        {
            unet?.Dispose();
            vae?.Dispose();
            te?.Dispose();
            throw;
        }
    }

    public void Dispose()
    {
        Unet.Dispose();
        Vae.Dispose();
        TextEncoder.Dispose();
    }
}
