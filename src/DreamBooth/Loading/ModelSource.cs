using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using DreamBooth.Loading.Hub;
using DreamBooth.Loading.SingleFile;
using DreamBooth.Models.Clip;
using DreamBooth.Models.Common;
using DreamBooth.Models.Unet;
using DreamBooth.Models.Vae;
using DreamBooth.Sampling;
using DreamBooth.Text;
using TorchSharp;
using static TorchSharp.torch;

namespace DreamBooth.Loading;

/// <summary>What kind of thing a model source string names.</summary>
public enum ModelSourceKind
{
    /// <summary>A diffusers folder (<c>model_index.json</c>, <c>unet/</c>, <c>vae/</c>, <c>text_encoder/</c>, <c>tokenizer/</c>, <c>scheduler/</c>).</summary>
    DiffusersFolder,

    /// <summary>A single-file CompVis/LDM checkpoint (<c>.safetensors</c> or <c>.ckpt</c>).</summary>
    SingleFile,

    /// <summary>A Hugging Face Hub repository id such as <c>runwayml/stable-diffusion-v1-5</c>.</summary>
    HubRepo,
}

/// <summary>
/// Options of <see cref="ModelSource.Load"/>. A single-file checkpoint has no tokenizer (and no configs): give
/// <see cref="TokenizerFolder"/> or <see cref="ConfigFolder"/> (a diffusers folder of the same family, as diffusers'
/// <c>from_single_file(config=...)</c>). SD 1.x and SD 2.x both use the CLIP ViT-L/14 BPE vocabulary
/// (<c>vocab.json</c> + <c>merges.txt</c>), so the <c>tokenizer/</c> folder of any SD 1.x/2.x diffusers model works.
/// </summary>
public sealed record ModelSourceOptions
{
    /// <summary>Weight-file variant of diffusers folders and hub downloads (<c>"fp16"</c> prefers <c>*.fp16.safetensors</c>).</summary>
    public string? Variant { get; init; }

    /// <summary>Single files: a folder with <c>vocab.json</c> and <c>merges.txt</c> (or a model folder with <c>tokenizer/</c>).</summary>
    public string? TokenizerFolder { get; init; }

    /// <summary>
    /// Single files: a diffusers folder whose <c>unet/</c>, <c>vae/</c>, <c>text_encoder/</c> configs, <c>tokenizer/</c>
    /// and <c>scheduler/</c> are used instead of inferred ones (the converted weights are still checked strictly).
    /// </summary>
    public string? ConfigFolder { get; init; }

    /// <summary>Single files: what the file cannot tell (prediction type, image size, non-standard head counts).</summary>
    public SingleFileOptions SingleFile { get; init; } = new();

    /// <summary>Hub repo ids: endpoint, cache folder, token (null: <c>HF_TOKEN</c> / token file), offline mode.</summary>
    public HubOptions? Hub { get; init; }

    /// <summary>Hub repo ids: branch, tag or commit.</summary>
    public string Revision { get; init; } = "main";

    /// <summary>Hub download progress (per file).</summary>
    public IProgress<DownloadProgress>? DownloadProgress { get; init; }

    /// <summary>One line per notable event (download steps, single-file warnings); never the token.</summary>
    public Action<string>? Log { get; init; }

    /// <summary>Throws <see cref="ArgumentException"/> naming the option and the fix.</summary>
    public void Validate()
    {
        if (Variant is not null && (Variant.Length == 0 || Variant.IndexOfAny(['/', '\\', '.', ' ']) >= 0))
            throw new ArgumentException($"ModelSourceOptions.Variant '{Variant}' is not a variant name; use e.g. \"fp16\" or leave it unset.", nameof(Variant));
        if (string.IsNullOrWhiteSpace(Revision))
            throw new ArgumentException("ModelSourceOptions.Revision is empty; use \"main\", a tag or a commit hash.", nameof(Revision));
        SingleFile.Validate();
        Hub?.Validate();
    }
}

/// <summary>
/// One entry point for every way a Stable Diffusion model is given: a diffusers folder
/// (<see cref="StableDiffusionModel.FromPretrained"/>), a single-file <c>.safetensors</c>/<c>.ckpt</c> checkpoint
/// (converted by <see cref="SingleFileCheckpoint"/>, like diffusers' <c>from_single_file</c>) or a Hugging Face Hub repo
/// id (downloaded into the shared cache by <see cref="HubClient"/>).
/// </summary>
public static partial class ModelSource
{
    /// <summary>File extensions treated as single-file checkpoints.</summary>
    public static readonly IReadOnlyList<string> SingleFileExtensions = [".safetensors", ".ckpt", ".pt", ".pth", ".bin"];

    /// <summary>
    /// Decides what <paramref name="source"/> names: an existing folder or file, else a hub repo id (<c>org/name</c>).
    /// Throws <see cref="ModelLoadException"/> when it is none of these (e.g. a path that does not exist).
    /// </summary>
    public static ModelSourceKind Classify(string source)
    {
        if (string.IsNullOrWhiteSpace(source))
            throw new ModelLoadException("(model)", "no model given: pass a diffusers folder, a .safetensors/.ckpt file or a hub repo id such as runwayml/stable-diffusion-v1-5");
        if (Directory.Exists(source))
        {
            if (File.Exists(Path.Combine(source, "model_index.json"))) return ModelSourceKind.DiffusersFolder;
            throw new ModelLoadException(Path.GetFullPath(source),
                "this folder has no model_index.json, so it is not a diffusers model folder (expected model_index.json, unet/, vae/, text_encoder/, tokenizer/, scheduler/); for a single-file checkpoint pass the .safetensors/.ckpt file itself");
        }
        if (File.Exists(source)) return ModelSourceKind.SingleFile;
        if (LooksLikePath(source))
            throw new ModelLoadException(Path.GetFullPath(source), "model not found (no such folder or file)");
        if (RepoIdRegex().IsMatch(source)) return ModelSourceKind.HubRepo;
        throw new ModelLoadException(source, "model not found: it is not an existing folder or file, and not a hub repo id of the form org/name");
    }

    /// <summary>
    /// The resolution a diffusers folder was trained at (UNet <c>sample_size</c> × the VAE's downscale factor: 512 for
    /// SD 1.5, 768 for SD 2.1, 64 for the tiny model), read from the two configs without loading weights; null for a
    /// single-file checkpoint or hub repo id (their configs are only known once loaded). Throws
    /// <see cref="ModelLoadException"/> naming the file when a config is missing or invalid.
    /// </summary>
    public static int? NativeResolution(string source)
    {
        if (Classify(source) != ModelSourceKind.DiffusersFolder) return null;
        var (unetPath, unet) = ComponentLoader.ReadConfig<Models.Unet.UNet2DConditionConfig>(Path.Combine(source, "unet"));
        unet.Validate(unetPath);
        var (vaePath, vae) = ComponentLoader.ReadConfig<Models.Vae.AutoencoderKLConfig>(Path.Combine(source, "vae"));
        vae.Validate(vaePath);
        return unet.SampleSize * vae.DownscaleFactor;
    }

    static bool LooksLikePath(string s) =>
        Path.IsPathRooted(s) || s.StartsWith('.') || s.StartsWith('~') || s.Count(c => c == '/' || c == '\\') != 1 || s.Contains('\\')
        || SingleFileExtensions.Any(e => s.EndsWith(e, StringComparison.OrdinalIgnoreCase));

    [GeneratedRegex(@"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,95}/[A-Za-z0-9][A-Za-z0-9_.\-]{0,95}$")]
    private static partial Regex RepoIdRegex();

    /// <summary>
    /// Loads a model from a diffusers folder, a single-file checkpoint or a hub repo id, on <paramref name="device"/>
    /// (default CPU) in <paramref name="dtype"/>. Either everything loads or nothing is kept.
    /// </summary>
    public static StableDiffusionModel Load(string source, Device? device = null, ScalarType dtype = ScalarType.Float32,
        ModelSourceOptions? options = null, CancellationToken cancellationToken = default)
    {
        options ??= new ModelSourceOptions();
        options.Validate();
        return Classify(source) switch
        {
            ModelSourceKind.DiffusersFolder => StableDiffusionModel.FromPretrained(source, device, dtype, options.Variant),
            ModelSourceKind.SingleFile => FromSingleFile(source, device, dtype, options),
            _ => FromHub(source, device, dtype, options, cancellationToken),
        };
    }

    /// <summary>Downloads (or finds in the cache) a pipeline repository and loads it.</summary>
    public static StableDiffusionModel FromHub(string repoId, Device? device, ScalarType dtype, ModelSourceOptions options,
        CancellationToken cancellationToken = default)
    {
        var folder = Download(repoId, options, cancellationToken);
        var model = StableDiffusionModel.FromPretrained(folder, device, dtype, options.Variant);
        return model;
    }

    /// <summary>Downloads (or finds in the cache) the files of a pipeline repository; returns the snapshot folder.</summary>
    public static string Download(string repoId, ModelSourceOptions options, CancellationToken cancellationToken = default)
    {
        using var client = new HubClient(options.Hub ?? new HubOptions(), options.Log);
        var variant = options.Variant switch
        {
            null => WeightVariant.None,
            "fp16" => WeightVariant.Fp16,
            _ => throw new ArgumentException($"variant '{options.Variant}': the hub download supports only \"fp16\"", nameof(options)),
        };
        try
        {
            return client.DownloadPipelineAsync(repoId, options.Revision, variant, false, options.DownloadProgress, cancellationToken)
                .GetAwaiter().GetResult();
        }
        catch (HubException e)
        {
            throw new ModelLoadException(repoId, e.Message, e);
        }
    }

    /// <summary>
    /// Loads a single-file checkpoint: converts its state dict (<see cref="SingleFileCheckpoint.Read"/>), builds the three
    /// models from the inferred configs (or those of <see cref="ModelSourceOptions.ConfigFolder"/>), loads the weights
    /// strictly, and takes the tokenizer from <see cref="ModelSourceOptions.TokenizerFolder"/> or the config folder.
    /// </summary>
    public static StableDiffusionModel FromSingleFile(string path, Device? device, ScalarType dtype, ModelSourceOptions options)
    {
        path = Path.GetFullPath(path);
        if (path.EndsWith(".safetensors", StringComparison.OrdinalIgnoreCase))
        {
            // a cheap structural check from the header first, so a LoRA/VAE-only file is named as such before anything else
            var shapes = Safetensors.ReadHeader(path).Entries.ToDictionary(e => e.Name, e => e.Shape, StringComparer.Ordinal);
            if (!shapes.Keys.Any(k => k.StartsWith(SingleFileCheckpoint.UnetPrefix, StringComparison.Ordinal)))
                throw new ModelLoadException(path, shapes.Keys.Any(k => k.StartsWith("lora_", StringComparison.Ordinal) || k.Contains(".lora_", StringComparison.Ordinal))
                    ? "this is a LoRA file, not a model; load a base model and pass the LoRA separately (--lora)"
                    : "no UNet weights (model.diffusion_model.*): this is not a Stable Diffusion single-file checkpoint (a diffusers component file, a VAE or an embedding?)");
        }
        var tokenizer = SingleFileTokenizer(path, options);
        var sfOptions = options.SingleFile;
        string? configFolder = options.ConfigFolder is null ? null : Path.GetFullPath(options.ConfigFolder);
        UNet2DConditionConfig? unetConfig = null;
        AutoencoderKLConfig? vaeConfig = null;
        ClipTextConfig? textConfig = null;
        SchedulerConfig? scheduler = null;
        if (configFolder is not null)
        {
            if (!Directory.Exists(configFolder))
                throw new ModelLoadException(configFolder, "config folder not found; give a diffusers model folder of the same family (SD 1.x or 2.x)");
            unetConfig = ComponentLoader.ReadConfig<UNet2DConditionConfig>(Path.Combine(configFolder, "unet")).Config;
            vaeConfig = ComponentLoader.ReadConfig<AutoencoderKLConfig>(Path.Combine(configFolder, "vae")).Config;
            textConfig = ComponentLoader.ReadConfig<ClipTextConfig>(Path.Combine(configFolder, "text_encoder")).Config;
            var schedPath = Path.Combine(configFolder, "scheduler", "scheduler_config.json");
            if (File.Exists(schedPath)) scheduler = SchedulerConfig.Load(schedPath);
            // what the file cannot tell comes from the configs, unless given explicitly
            sfOptions = sfOptions with
            {
                NormNumGroups = sfOptions.NormNumGroups ?? unetConfig.NormNumGroups,
                AttentionHeadDim = sfOptions.AttentionHeadDim ?? AttentionHeads(unetConfig),
                TextEncoderAttentionHeads = sfOptions.TextEncoderAttentionHeads ?? textConfig.NumAttentionHeads,
                TextEncoderLayers = sfOptions.TextEncoderLayers ?? textConfig.NumHiddenLayers,
                ImageSize = sfOptions.ImageSize ?? unetConfig.SampleSize * vaeConfig.DownscaleFactor,
                PredictionType = sfOptions.PredictionType ?? scheduler?.PredictionType,
            };
        }

        SingleFileModel sfRead;
        try
        {
            sfRead = SingleFileCheckpoint.Read(path, sfOptions);
        }
        catch (ModelLoadException e) when (configFolder is null && e.Message.Contains("SingleFileOptions.", StringComparison.Ordinal))
        {
            throw new ModelLoadException(path, e.Problem + "; or give a diffusers folder of the same model family as the config folder (--config / ModelSourceOptions.ConfigFolder)", e);
        }
        using var sf = sfRead;
        foreach (var w in sf.Warnings) options.Log?.Invoke($"{Path.GetFileName(path)}: {w}");
        if (scheduler is null)
        {
            var json = sf.SchedulerConfig ?? throw new ModelLoadException(path,
                "the prediction type of this SD 2.x file is unknown (epsilon for 2.x-base 512 px, v_prediction for 2.x 768 px); set it (--prediction-type / SingleFileOptions.PredictionType) or give a config folder");
            scheduler = SchedulerConfig.Parse(json.ToJsonString(), path + " (inferred scheduler)");
        }
        unetConfig ??= FromJson<UNet2DConditionConfig>(sf.UnetConfig, path, "unet");
        vaeConfig ??= FromJson<AutoencoderKLConfig>(sf.VaeConfig, path, "vae");
        textConfig ??= FromJson<ClipTextConfig>(sf.TextEncoderConfig, path, "text_encoder");
        return Build(sf.UnetState, sf.VaeState, sf.TextEncoderState, unetConfig, vaeConfig, textConfig, tokenizer, scheduler, path, device, dtype);
    }

    static IReadOnlyList<int>? AttentionHeads(UNet2DConditionConfig c) =>
        c.AttentionHeadDim is null ? null : c.AttentionHeadDim.List ?? [c.AttentionHeadDim.Single!.Value];

    static T FromJson<T>(JsonObject o, string path, string component) where T : class
    {
        var where = $"{path} (inferred {component} config)";
        return Models.Common.ConfigJson.Parse<T>(o.ToJsonString(), where);
    }

    /// <summary>The tokenizer for a single file: the tokenizer option, else the config folder's <c>tokenizer/</c>.</summary>
    static ClipTokenizer SingleFileTokenizer(string path, ModelSourceOptions options)
    {
        var folder = options.TokenizerFolder ?? options.ConfigFolder;
        if (folder is null)
            throw new ModelLoadException(path,
                "a single-file checkpoint holds no tokenizer. Point at one: --tokenizer <folder with vocab.json and merges.txt> " +
                "(SD 1.x and 2.x both use the CLIP ViT-L/14 vocabulary, e.g. the tokenizer/ folder of any SD 1.5 or 2.1 diffusers model), " +
                "or --config <diffusers folder of the same family> to take its tokenizer, configs and scheduler");
        return ClipTokenizer.FromFolder(Path.GetFullPath(folder));
    }

    /// <summary>
    /// Builds UNet, VAE and text encoder from typed configs and loads the given diffusers-layout state dicts strictly
    /// (the state dicts stay owned by the caller). The VAE runs in float32 when fp16 is asked for (diffusers' force_upcast).
    /// </summary>
    public static StableDiffusionModel Build(
        IReadOnlyDictionary<string, Tensor> unetState, IReadOnlyDictionary<string, Tensor> vaeState, IReadOnlyDictionary<string, Tensor> textState,
        UNet2DConditionConfig unetConfig, AutoencoderKLConfig vaeConfig, ClipTextConfig textConfig,
        ClipTokenizer tokenizer, SchedulerConfig scheduler, string source, Device? device = null, ScalarType dtype = ScalarType.Float32)
    {
        unetConfig.Validate(source + " (unet config)");
        vaeConfig.Validate(source + " (vae config)");
        textConfig.Validate(source + " (text_encoder config)");
        if (unetConfig.CrossAttentionDim != textConfig.HiddenSize)
            throw new ModelLoadException(source, $"unet cross_attention_dim {unetConfig.CrossAttentionDim} does not match text_encoder hidden_size {textConfig.HiddenSize}");
        var dev = device ?? torch.CPU;
        UNet2DConditionModel? unet = null;
        AutoencoderKL? vae = null;
        ClipTextModel? te = null;
        try
        {
            te = new ClipTextModel(textConfig, new ModelPlacement(dev, dtype));
            StateDicts.LoadStrict(te, textState, source + " (text encoder)", k => k == "text_model.embeddings.position_ids");
            te.eval();
            var vaeDtype = dtype == ScalarType.Float16 ? ScalarType.Float32 : dtype;
            vae = new AutoencoderKL(vaeConfig, new ModelPlacement(dev, vaeDtype));
            StateDicts.LoadStrict(vae, vaeState, source + " (VAE)");
            vae.eval();
            unet = new UNet2DConditionModel(unetConfig, new ModelPlacement(dev, dtype));
            StateDicts.LoadStrict(unet, unetState, source + " (UNet)");
            unet.eval();
            return new StableDiffusionModel(unet, vae, te, tokenizer, scheduler, source);
        }
        catch
        {
            unet?.Dispose();
            vae?.Dispose();
            te?.Dispose();
            throw;
        }
    }
}
