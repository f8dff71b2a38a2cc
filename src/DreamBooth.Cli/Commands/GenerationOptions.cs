using System.CommandLine;
using System.Globalization;
using DreamBooth.Imaging;
using DreamBooth.Loading;
using DreamBooth.Loading.SingleFile;
using DreamBooth.Models.Common;
using DreamBooth.Pipelines;
using DreamBooth.Sampling;
using SixLabors.ImageSharp;
using SixLabors.ImageSharp.PixelFormats;
using SixLabors.ImageSharp.Processing;
using TorchSharp;
using static TorchSharp.torch;

namespace DreamBooth.Cli.Commands;

/// <summary>Where the model runs: <c>auto</c> = CUDA when available, else the CPU.</summary>
public enum DeviceChoice
{
    Auto,
    Cpu,
    Cuda,
}

/// <summary>Precision of the model weights.</summary>
public enum DTypeChoice
{
    Fp32,
    Bf16,
    Fp16,
}

/// <summary>A loaded model with the LoRA networks applied to it; disposing releases both.</summary>
public sealed class LoadedModel(StableDiffusionModel model, IReadOnlyList<LoraNetwork> loras) : IDisposable
{
    public StableDiffusionModel Model { get; } = model;

    public IReadOnlyList<LoraNetwork> Loras { get; } = loras;

    public void Dispose()
    {
        foreach (var l in Loras) l.Dispose();
        Model.Dispose();
    }
}

/// <summary>The options shared by <c>generate</c> and <c>grid</c>: model, prompt, size, sampler, seed, device, output.</summary>
public sealed class GenerationOptions
{
    public Option<string> Model { get; } = new("--model", "-m") { Description = "Diffusers folder, .safetensors/.ckpt single file, or hub repo id (org/name).", DefaultValueFactory = _ => CliPaths.DefaultModel };
    public Option<string?> Tokenizer { get; } = new("--tokenizer") { Description = "Single files: tokenizer folder (vocab.json + merges.txt; SD 1.x/2.x use the CLIP ViT-L/14 vocabulary)." };
    public Option<string?> ConfigFolder { get; } = new("--config") { Description = "Single files: a diffusers folder of the same family whose configs, tokenizer and scheduler are used." };
    public Option<string?> PredictionType { get; } = new("--prediction-type") { Description = "Single SD 2.x files that do not say: epsilon (2.x-base, 512 px) or v (2.x, 768 px)." };
    public Option<string?> Token { get; } = new("--token") { Description = "Hub repo ids: access token for gated/private models (default: $HF_TOKEN or the huggingface-cli token file). Never printed." };
    public Option<string> Prompt { get; } = new("--prompt", "-p") { Description = "The prompt ((word:1.3) emphasis, long prompts in chunks of 75 tokens).", DefaultValueFactory = _ => "" };
    public Option<string> Negative { get; } = new("--negative", "-n") { Description = "Negative prompt text.", DefaultValueFactory = _ => "" };
    public Option<string?> NegativePreset { get; } = new("--negative-preset") { Description = "Named negative prompt from data/negative-prompts.json (appended to --negative)." };
    public Option<int?> Width { get; } = new("--width", "-W") { Description = "Width in pixels, a multiple of 8 (default: the model's resolution, or the init image's)." };
    public Option<int?> Height { get; } = new("--height", "-H") { Description = "Height in pixels, a multiple of 8." };
    public Option<int> Steps { get; } = new("--steps") { Description = "Sampling steps.", DefaultValueFactory = _ => 20 };
    public Option<double> CfgScale { get; } = new("--cfg-scale") { Description = "Classifier-free guidance scale.", DefaultValueFactory = _ => 7.5 };
    public Option<double> GuidanceRescale { get; } = new("--guidance-rescale") { Description = "CFG rescale φ in [0, 1] (0.7 for zero-terminal-SNR models such as the tiny model; 0 = off).", DefaultValueFactory = _ => 0.0 };
    public Option<string> Sampler { get; } = new("--sampler") { Description = "Sampler name as in AUTOMATIC1111 (\"Euler a\", \"DPM++ 2M Karras\", \"DDIM\", ...).", DefaultValueFactory = _ => "Euler a" };
    public Option<long> Seed { get; } = new("--seed") { Description = "Seed of the first image (image i uses seed + i); -1 = random.", DefaultValueFactory = _ => -1L };
    public Option<int> BatchSize { get; } = new("--batch-size") { Description = "Images per run.", DefaultValueFactory = _ => 1 };
    public Option<int> ClipSkip { get; } = new("--clip-skip") { Description = "1 = last text-encoder layer, 2 = penultimate, ...", DefaultValueFactory = _ => 1 };
    public Option<string?> InitImage { get; } = new("--init-image") { Description = "Image-to-image: the starting picture (resized to the output size)." };
    public Option<double> Strength { get; } = new("--strength") { Description = "Image-to-image denoising strength in (0, 1].", DefaultValueFactory = _ => 0.75 };
    public Option<string?> Lora { get; } = new("--lora") { Description = "A LoRA file (.safetensors: kohya or diffusers format) applied to the model." };
    public Option<double> LoraScale { get; } = new("--lora-scale") { Description = "LoRA strength multiplier.", DefaultValueFactory = _ => 1.0 };
    public Option<string> Device { get; } = new("--device") { Description = "cpu, cuda or auto (cuda when available).", DefaultValueFactory = _ => "auto" };
    public Option<string> DType { get; } = new("--dtype") { Description = "fp32, bf16 or fp16 (fp16 only on CUDA).", DefaultValueFactory = _ => "fp32" };
    public Option<string> Out { get; } = new("--out", "-o") { Description = "Output folder (created if missing; files are never overwritten).", DefaultValueFactory = _ => "outputs" };

    /// <summary>Adds every option to <paramref name="cmd"/>; <paramref name="includeInit"/> = the img2img options.</summary>
    public void AddTo(Command cmd, bool includeInit = true)
    {
        Option[] all = [Model, Tokenizer, ConfigFolder, PredictionType, Token, Prompt, Negative, NegativePreset, Width, Height, Steps, CfgScale, GuidanceRescale, Sampler, Seed, BatchSize, ClipSkip];
        foreach (var o in all) cmd.Options.Add(o);
        if (includeInit)
        {
            cmd.Options.Add(InitImage);
            cmd.Options.Add(Strength);
        }
        foreach (var o in new Option[] { Lora, LoraScale, Device, DType, Out }) cmd.Options.Add(o);
    }

    /// <summary>Parses <c>--device</c>.</summary>
    public static DeviceChoice ParseDevice(string text) => text.Trim().ToLowerInvariant() switch
    {
        "auto" => DeviceChoice.Auto,
        "cpu" => DeviceChoice.Cpu,
        "cuda" or "gpu" => DeviceChoice.Cuda,
        _ => throw new CliException($"--device '{text}' is not a device; use cpu, cuda or auto"),
    };

    /// <summary>Parses <c>--dtype</c>.</summary>
    public static DTypeChoice ParseDType(string text) => text.Trim().ToLowerInvariant() switch
    {
        "fp32" or "float32" or "float" => DTypeChoice.Fp32,
        "bf16" or "bfloat16" => DTypeChoice.Bf16,
        "fp16" or "float16" or "half" => DTypeChoice.Fp16,
        _ => throw new CliException($"--dtype '{text}' is not a precision; use fp32, bf16 or fp16"),
    };

    /// <summary>The device and dtype the options ask for; fp16 on the CPU is refused with the fix.</summary>
    public static (Device Device, ScalarType DType) Placement(DeviceChoice device, DTypeChoice dtype)
    {
        bool cuda = device switch
        {
            DeviceChoice.Cpu => false,
            DeviceChoice.Cuda => torch.cuda.is_available() ? true
                : throw new CliException("--device cuda: no CUDA GPU is available to this build (TorchSharp CPU backend or no driver); use --device cpu"),
            _ => torch.cuda.is_available(),
        };
        if (dtype == DTypeChoice.Fp16 && !cuda)
            throw new CliException("--dtype fp16 needs a CUDA GPU (half-precision kernels are missing or very slow on the CPU); use --dtype bf16 or fp32 on the CPU");
        var st = dtype switch
        {
            DTypeChoice.Bf16 => ScalarType.BFloat16,
            DTypeChoice.Fp16 => ScalarType.Float16,
            _ => ScalarType.Float32,
        };
        return (cuda ? torch.CUDA : torch.CPU, st);
    }

    public (Device Device, ScalarType DType) Placement(ParseResult pr) =>
        Placement(ParseDevice(pr.GetValue(Device)!), ParseDType(pr.GetValue(DType)!));

    /// <summary>The negative prompt: <c>--negative</c>, then the preset's text (joined with ", ").</summary>
    public string NegativeText(ParseResult pr)
    {
        var text = pr.GetValue(Negative) ?? "";
        var name = pr.GetValue(NegativePreset);
        if (string.IsNullOrWhiteSpace(name)) return text;
        var preset = LoadPresets().Get(name).Text;
        if (preset.Length == 0) return text;
        return text.Length == 0 ? preset : text + ", " + preset;
    }

    /// <summary>The presets file of the repository.</summary>
    public static NegativePromptPresets LoadPresets() => NegativePromptPresets.Load(CliPaths.Resolve(CliPaths.NegativePresets));

    /// <summary>The request the options describe (no init image yet), checked before any model is loaded.</summary>
    public GenerationRequest BuildRequest(ParseResult pr)
    {
        var req = new GenerationRequest
        {
            Prompt = pr.GetValue(Prompt) ?? "",
            NegativePrompt = NegativeText(pr),
            Width = pr.GetValue(Width),
            Height = pr.GetValue(Height),
            Steps = pr.GetValue(Steps),
            GuidanceScale = pr.GetValue(CfgScale),
            GuidanceRescale = pr.GetValue(GuidanceRescale),
            Sampler = SamplerFactory.Parse(pr.GetValue(Sampler)),
            Seed = pr.GetValue(Seed),
            BatchSize = pr.GetValue(BatchSize),
            ClipSkip = pr.GetValue(ClipSkip),
            Strength = pr.GetValue(Strength),
        };
        if (req.Seed < -1) throw new CliException($"--seed must be -1 (random) or a number ≥ 0 (got {req.Seed})");
        req.Validate();
        return req;
    }

    /// <summary>Loading options for single files and hub ids.</summary>
    public ModelSourceOptions SourceOptions(ParseResult pr, ScalarType dtype)
    {
        var sf = new SingleFileOptions();
        if (pr.GetValue(PredictionType) is { } p)
            sf = sf with
            {
                PredictionType = Cli.ParsePredictionType(p, "--prediction-type"),
            };
        return new ModelSourceOptions
        {
            TokenizerFolder = pr.GetValue(Tokenizer),
            ConfigFolder = pr.GetValue(ConfigFolder),
            SingleFile = sf,
            Variant = dtype == ScalarType.Float16 ? "fp16" : null,
            Hub = pr.GetValue(Token) is { } token ? DownloadCommand.BuildHubOptions(token, false, null, null) : null,
            Log = line => Cli.Err.WriteLine(line),
            DownloadProgress = DownloadCommand.ProgressPrinter(),
        };
    }

    /// <summary>Loads <paramref name="source"/> (default: <c>--model</c>) and applies <c>--lora</c>.</summary>
    public LoadedModel LoadModel(ParseResult pr, string? source = null)
    {
        var (device, dtype) = Placement(pr);
        var src = source ?? CliPaths.Resolve(pr.GetValue(Model)!);
        if (src == CliPaths.DefaultModel && !Directory.Exists(src))
            throw new CliException($"the default model {CliPaths.DefaultModel} is not in this checkout; pass --model <diffusers folder | .safetensors/.ckpt | org/name>");
        if (pr.GetValue(Lora) is { } loraPath && !File.Exists(loraPath)) throw new CliException($"--lora {loraPath}: file not found");
        var model = ModelSource.Load(src, device, dtype, SourceOptions(pr, dtype), Cli.Cancellation);
        var loras = new List<LoraNetwork>();
        try
        {
            if (pr.GetValue(Lora) is { } lora)
            {
                var (u, t) = LoraFiles.Apply(lora, model.Unet, model.TextEncoder, pr.GetValue(LoraScale));
                loras.Add(u);
                if (t is not null) loras.Add(t);
            }
            return new LoadedModel(model, loras);
        }
        catch
        {
            foreach (var l in loras) l.Dispose();
            model.Dispose();
            throw;
        }
    }

    /// <summary>Extra infotext entries (the LoRA and its strength).</summary>
    public IReadOnlyList<KeyValuePair<string, string>> ExtraParameters(ParseResult pr) =>
        pr.GetValue(Lora) is { } lora
            ? [new("Lora", string.Create(CultureInfo.InvariantCulture, $"{Path.GetFileNameWithoutExtension(lora)}: {pr.GetValue(LoraScale)}"))]
            : [];

    /// <summary>Reads <c>--init-image</c> and resizes it to the request's size (defaults: the image's size rounded down to 8).</summary>
    public static (Image<Rgb24> Image, int Width, int Height) LoadInitImage(string path, int? width, int? height)
    {
        if (!File.Exists(path)) throw new CliException($"--init-image {path}: file not found");
        var info = Image.Identify(path);
        if ((long)info.Width * info.Height > 64L * 1000 * 1000 || info.Width > 16384 || info.Height > 16384)
            throw new CliException($"--init-image {path}: {info.Width}×{info.Height} is too large (at most 64 megapixels)");
        int w = width ?? Math.Max(8, info.Width / 8 * 8);
        int h = height ?? Math.Max(8, info.Height / 8 * 8);
        var img = Image.Load<Rgb24>(path);
        if (img.Width != w || img.Height != h) img.Mutate(x => x.Resize(w, h));
        return (img, w, h);
    }
}

/// <summary>Output file names <c>00001-&lt;seed&gt;.png</c>, numbered after the highest existing number, never overwriting.</summary>
public static class OutputFiles
{
    /// <summary>Creates (empty) and returns the next free <c>NNNNN-seed.png</c> in <paramref name="folder"/>.</summary>
    public static string Reserve(string folder, long seed, string suffix = "")
    {
        Directory.CreateDirectory(folder);
        int next = NextNumber(folder);
        for (int attempt = 0; attempt < 10000; attempt++, next++)
        {
            var path = Path.Combine(folder, string.Create(CultureInfo.InvariantCulture, $"{next:D5}-{seed}{suffix}.png"));
            try
            {
                using (new FileStream(path, FileMode.CreateNew, FileAccess.Write)) { }
                return path;
            }
            catch (IOException) when (File.Exists(path)) { }
        }
        throw new CliException($"could not find a free file name in {folder}");
    }

    static int NextNumber(string folder)
    {
        int max = 0;
        foreach (var f in Directory.EnumerateFiles(folder, "*.png"))
        {
            var name = Path.GetFileName(f);
            int dash = name.IndexOf('-');
            var digits = dash > 0 ? name[..dash] : Path.GetFileNameWithoutExtension(name);
            if (int.TryParse(digits, NumberStyles.None, CultureInfo.InvariantCulture, out var n)) max = Math.Max(max, n);
        }
        return max + 1;
    }
}
