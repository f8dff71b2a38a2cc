using System.Text.Json.Nodes;
using DreamBooth.Loading.Pickle;
using TorchSharp;
using static TorchSharp.torch;
using DreamBooth.Sampling;

namespace DreamBooth.Loading.SingleFile;

/// <summary>
/// The plan for converting a single-file state dict to diffusers, worked out from key names and
/// shapes only (no tensor data), so it can be checked on full-size listings without weights.
/// </summary>
public sealed record SingleFilePlan(
    SdVariant Variant,
    IReadOnlyList<TensorMapping> Mappings,
    IReadOnlyDictionary<ModelComponent, IReadOnlyDictionary<string, long[]>> TargetShapes,
    JsonObject UnetConfig, JsonObject VaeConfig, JsonObject TextEncoderConfig,
    PredictionType? PredictionType, int? ImageSize,
    IReadOnlyList<string> IgnoredKeys, IReadOnlyList<string> Warnings);

/// <summary>A single-file checkpoint converted to the diffusers layout. Owns (disposes) its tensors.</summary>
public sealed class SingleFileModel : IDisposable
{
    internal SingleFileModel(SingleFilePlan plan, Dictionary<string, Tensor> unet, Dictionary<string, Tensor> vae,
        Dictionary<string, Tensor> text, long? globalStep)
    {
        Plan = plan;
        UnetState = unet;
        VaeState = vae;
        TextEncoderState = text;
        GlobalStep = globalStep;
    }

    /// <summary>The conversion plan (mappings, configs, ignored keys, warnings).</summary>
    public SingleFilePlan Plan { get; }

    /// <summary>UNet2DConditionModel state dict, diffusers key names.</summary>
    public Dictionary<string, Tensor> UnetState { get; }

    /// <summary>AutoencoderKL state dict, diffusers key names (current attention names, Linear q/k/v).</summary>
    public Dictionary<string, Tensor> VaeState { get; }

    /// <summary>CLIPTextModel state dict, transformers key names.</summary>
    public Dictionary<string, Tensor> TextEncoderState { get; }

    public JsonObject UnetConfig => Plan.UnetConfig;

    public JsonObject VaeConfig => Plan.VaeConfig;

    public JsonObject TextEncoderConfig => Plan.TextEncoderConfig;

    /// <summary>The scheduler config (noise schedule + prediction type); null while the prediction type is unknown.</summary>
    public JsonObject? SchedulerConfig => PredictionType is { } p ? SdConfigInference.Scheduler(Variant, p) : null;

    public SdVariant Variant => Plan.Variant;

    /// <summary>Null when the file does not tell and no option was given (see <see cref="Warnings"/>).</summary>
    public PredictionType? PredictionType => Plan.PredictionType;

    /// <summary>Null when the file does not tell and no option was given (see <see cref="Warnings"/>).</summary>
    public int? ImageSize => Plan.ImageSize;

    /// <summary>Keys of the file that were not converted (schedule buffers, EMA copy, unused text-encoder parts ...).</summary>
    public IReadOnlyList<string> IgnoredKeys => Plan.IgnoredKeys;

    public IReadOnlyList<string> Warnings => Plan.Warnings;

    /// <summary>The file's top-level global_step (.ckpt only), if any.</summary>
    public long? GlobalStep { get; }

    public void Dispose()
    {
        foreach (var d in new[] { UnetState, VaeState, TextEncoderState })
        {
            foreach (var t in d.Values) t.Dispose();
            d.Clear();
        }
    }
}

/// <summary>
/// Reads and writes Stable Diffusion single-file checkpoints (CompVis/LDM layout, as published for
/// SD 1.x/2.x: <c>model.diffusion_model.*</c>, <c>first_stage_model.*</c>, <c>cond_stage_model.*</c>)
/// and converts them to and from the diffusers layout at the state-dict level, like diffusers'
/// <c>from_single_file</c> and <c>scripts/convert_diffusers_to_original_stable_diffusion.py</c>.
/// </summary>
public static class SingleFileCheckpoint
{
    public const string UnetPrefix = "model.diffusion_model.";
    public const string VaePrefix = "first_stage_model.";
    public const string ClipPrefix = "cond_stage_model.transformer.";
    public const string OpenClipPrefix = "cond_stage_model.model.";
    public const string EmaPrefix = "model_ema.";

    /// <summary>The persistent noise-schedule buffers of LDM's LatentDiffusion (top level of original checkpoints); ignored.</summary>
    public static readonly IReadOnlySet<string> ScheduleBuffers = new HashSet<string>(StringComparer.Ordinal)
    {
        "alphas_cumprod", "alphas_cumprod_prev", "betas", "log_one_minus_alphas_cumprod",
        "posterior_log_variance_clipped", "posterior_mean_coef1", "posterior_mean_coef2", "posterior_variance",
        "sqrt_alphas_cumprod", "sqrt_one_minus_alphas_cumprod", "sqrt_recip_alphas_cumprod", "sqrt_recipm1_alphas_cumprod",
        "logvar", "lvlb_weights",
    };

    /// <summary>The global_step of Stability's SD 2.0-base (512, epsilon); diffusers treats other SD 2.x steps as 768 v-prediction.</summary>
    public const long Sd2BaseGlobalStep = 875000;

    /// <summary>
    /// Reads a <c>.safetensors</c> or PyTorch (<c>.ckpt</c>/<c>.pt</c>/<c>.bin</c>) single file and converts it to
    /// diffusers state dicts plus inferred configs. Throws <see cref="ModelLoadException"/> for anything
    /// it cannot use, naming the file and the problem.
    /// </summary>
    public static SingleFileModel Read(string path, SingleFileOptions? options = null)
    {
        options ??= new SingleFileOptions();
        options.Validate();
        Dictionary<string, Tensor> state;
        long? globalStep = null;
        if (IsTorchFile(path))
        {
            var ckpt = TorchPickle.LoadCheckpoint(path);
            state = ckpt.StateDict;
            globalStep = ckpt.GlobalStep;
        }
        else state = Safetensors.Load(path);
        try
        {
            var shapes = state.ToDictionary(kv => kv.Key, kv => kv.Value.shape, StringComparer.Ordinal);
            var plan = Plan(shapes, globalStep, options, path);
            var parts = new Dictionary<ModelComponent, Dictionary<string, Tensor>>
            {
                [ModelComponent.Unet] = new(StringComparer.Ordinal),
                [ModelComponent.Vae] = new(StringComparer.Ordinal),
                [ModelComponent.TextEncoder] = new(StringComparer.Ordinal),
            };
            try
            {
                foreach (var m in plan.Mappings)
                    parts[m.Component][m.Target] = Apply(m, k => state[k]);
            }
            catch
            {
                foreach (var d in parts.Values) foreach (var t in d.Values) t.Dispose();
                throw;
            }
            return new SingleFileModel(plan, parts[ModelComponent.Unet], parts[ModelComponent.Vae], parts[ModelComponent.TextEncoder], globalStep);
        }
        finally
        {
            foreach (var t in state.Values) t.Dispose(); // the outputs are their own handles
        }
    }

    /// <summary>By content, not name: a zip or legacy torch stream is PyTorch, a JSON header at byte 8 is safetensors.</summary>
    static bool IsTorchFile(string path)
    {
        if (!File.Exists(path)) return false;
        using var fs = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read);
        Span<byte> head = stackalloc byte[9];
        int n = fs.ReadAtLeast(head, head.Length, throwOnEndOfStream: false);
        if (n >= 2 && head[..2].SequenceEqual("PK"u8)) return true;
        if (n >= 4 && head[..4].SequenceEqual((ReadOnlySpan<byte>)[0x80, 0x02, 0x8a, 0x0a])) return true; // legacy torch magic
        if (n == 9 && head[8] == (byte)'{') return false; // safetensors, whatever the extension
        var ext = Path.GetExtension(path).ToLowerInvariant();
        return ext is ".ckpt" or ".pt" or ".pth" or ".bin";
    }

    /// <summary>
    /// Works out the conversion of a single-file state dict from its key names and shapes alone:
    /// variant, mappings, diffusers shapes, configs, prediction type and image size, ignored keys.
    /// </summary>
    public static SingleFilePlan Plan(IReadOnlyDictionary<string, long[]> shapes, long? globalStep, SingleFileOptions options, string path)
    {
        options.Validate();
        var warnings = new List<string>();
        var ignored = new List<string>();
        var unet = new List<string>();
        var vae = new List<string>();
        var clip = new List<string>();
        var openClip = new List<string>();
        var emaKeys = new HashSet<string>(StringComparer.Ordinal);
        int unknown = 0;
        foreach (var k in shapes.Keys.OrderBy(k => k, StringComparer.Ordinal))
        {
            if (k.StartsWith(UnetPrefix, StringComparison.Ordinal)) unet.Add(k[UnetPrefix.Length..]);
            else if (k.StartsWith(VaePrefix, StringComparison.Ordinal)) vae.Add(k[VaePrefix.Length..]);
            else if (k.StartsWith(ClipPrefix, StringComparison.Ordinal)) clip.Add(k[ClipPrefix.Length..]);
            else if (k.StartsWith(OpenClipPrefix, StringComparison.Ordinal)) openClip.Add(k[OpenClipPrefix.Length..]);
            else
            {
                if (k.StartsWith(EmaPrefix, StringComparison.Ordinal)) emaKeys.Add(k);
                else if (!ScheduleBuffers.Contains(k) && k != "v_pred") unknown++;
                ignored.Add(k);
            }
        }
        if (unknown > 0)
            warnings.Add($"{unknown} key(s) outside the UNet/VAE/text-encoder prefixes were ignored (see IgnoredKeys)");
        if (emaKeys.Count > 0 && !options.UseEmaWeights)
            warnings.Add($"the file holds an EMA copy of the UNet ({emaKeys.Count} model_ema.* keys); it was ignored (set SingleFileOptions.UseEmaWeights to use it)");
        if (unet.Count == 0)
            throw new ModelLoadException(path, "no UNet weights (model.diffusion_model.*): this is not a Stable Diffusion single-file checkpoint, or it holds only a VAE/LoRA/embedding");
        if (vae.Count == 0)
            throw new ModelLoadException(path, "no VAE weights (first_stage_model.*): the file is incomplete; load the VAE separately from a diffusers folder");
        if (clip.Count == 0 && openClip.Count == 0)
            throw new ModelLoadException(path, "no text-encoder weights (cond_stage_model.*): the file is incomplete");
        if (clip.Count > 0 && openClip.Count > 0)
            throw new ModelLoadException(path, "the file holds both a CLIP (cond_stage_model.transformer.*) and an OpenCLIP (cond_stage_model.model.*) text encoder; it is not SD 1.x or SD 2.x");
        var variant = options.Variant ?? (openClip.Count > 0 ? SdVariant.Sd2 : SdVariant.Sd1);
        if ((variant == SdVariant.Sd2) != (openClip.Count > 0))
            throw new ModelLoadException(path, $"SingleFileOptions.Variant = {variant} but the text encoder is {(openClip.Count > 0 ? "OpenCLIP (SD 2.x)" : "CLIP (SD 1.x)")}; remove the option");

        var mappings = new List<TensorMapping>();
        var unmapped = new List<string>();
        try
        {
            var unetMap = LdmKeyMap.UnetToDiffusers(unet, unmapped);
            foreach (var m in unetMap)
            {
                string src = UnetPrefix + m.Sources[0];
                if (options.UseEmaWeights && emaKeys.Count > 0)
                {
                    // LitEma: "model_ema." + the parameter name without "model." and without dots.
                    string ema = EmaPrefix + ("diffusion_model." + m.Sources[0]).Replace(".", "", StringComparison.Ordinal);
                    if (!emaKeys.Contains(ema))
                        throw new ModelLoadException(path, $"UseEmaWeights: the EMA copy has no '{ema}' for '{src}'");
                    src = ema;
                }
                mappings.Add(m with { Sources = [src] });
            }
            foreach (var m in LdmKeyMap.VaeToDiffusers(vae, unmapped))
                mappings.Add(m with { Sources = [VaePrefix + m.Sources[0]] });
            if (variant == SdVariant.Sd1)
            {
                var textIgnored = new List<string>();
                foreach (var m in LdmKeyMap.ClipToDiffusers(clip, textIgnored))
                    mappings.Add(m with { Sources = [ClipPrefix + m.Sources[0]] });
                ignored.AddRange(textIgnored.Select(k => ClipPrefix + k));
            }
            else
            {
                int stored = LdmKeyMap.OpenClipBlockCount(openClip);
                bool released = openClip.Contains("text_projection") || openClip.Contains("logit_scale");
                int layers = options.TextEncoderLayers ?? (released ? stored - 1 : stored);
                if (layers < 1 || layers > stored)
                    throw new ModelLoadException(path, $"the OpenCLIP text encoder stores {stored} blocks; cannot use {layers} (check SingleFileOptions.TextEncoderLayers)");
                var textIgnored = new List<string>();
                foreach (var m in LdmKeyMap.OpenClipToDiffusers(openClip, layers, textIgnored, unmapped))
                    mappings.Add(m with { Sources = [OpenClipPrefix + m.Sources[0]] });
                ignored.AddRange(textIgnored.Select(k => OpenClipPrefix + k));
            }
        }
        catch (FormatException e)
        {
            throw new ModelLoadException(path, e.Message, e);
        }
        if (unmapped.Count > 0)
            throw new ModelLoadException(path, $"{unmapped.Count} key(s) do not fit the Stable Diffusion architecture, e.g. '{string.Join("', '", unmapped.Take(5))}' (an unsupported model variant, or a damaged file)");

        var targetShapes = new Dictionary<ModelComponent, Dictionary<string, long[]>>
        {
            [ModelComponent.Unet] = new(StringComparer.Ordinal),
            [ModelComponent.Vae] = new(StringComparer.Ordinal),
            [ModelComponent.TextEncoder] = new(StringComparer.Ordinal),
        };
        foreach (var m in mappings)
        {
            long[] shape;
            try { shape = m.TargetShape(k => shapes[k]); }
            catch (ArgumentException e) { throw new ModelLoadException(path, e.Message, e); }
            if (!targetShapes[m.Component].TryAdd(m.Target, shape))
                throw new ModelLoadException(path, $"two tensors map to the same {m.Component} key '{m.Target}'");
        }

        var (prediction, imageSize) = DetectPrediction(shapes, globalStep, variant, options, warnings);
        int size = imageSize ?? 512;
        if (imageSize is null)
            warnings.Add("the configs use sample_size for 512 px; set SingleFileOptions.ImageSize if the model was trained at another size");
        JsonObject unetConfig, vaeConfig, textConfig;
        try
        {
            unetConfig = SdConfigInference.Unet(targetShapes[ModelComponent.Unet], variant, options, prediction, size, path);
            vaeConfig = SdConfigInference.Vae(targetShapes[ModelComponent.Vae], options, size, path);
            textConfig = SdConfigInference.TextEncoder(targetShapes[ModelComponent.TextEncoder], variant, options, path);
        }
        catch (Exception e) when (e is FormatException or IndexOutOfRangeException or ArgumentException or InvalidOperationException)
        {
            throw new ModelLoadException(path, $"the tensor shapes do not form a Stable Diffusion model ({e.Message})", e);
        }
        return new SingleFilePlan(variant, mappings,
            targetShapes.ToDictionary(kv => kv.Key, kv => (IReadOnlyDictionary<string, long[]>)kv.Value),
            unetConfig, vaeConfig, textConfig, prediction, imageSize, ignored, warnings);
    }

    /// <summary>
    /// Prediction type and image size as far as the file tells: SD 1.x is epsilon at 512; for SD 2.x a
    /// <c>v_pred</c> marker key means v-prediction, and diffusers' global_step rule applies (875000 =
    /// 2.0-base, epsilon at 512; any other step: v-prediction at 768). Options win.
    /// </summary>
    static (PredictionType?, int?) DetectPrediction(IReadOnlyDictionary<string, long[]> shapes, long? globalStep,
        SdVariant variant, SingleFileOptions options, List<string> warnings)
    {
        PredictionType? p = null;
        int? size = null;
        if (variant == SdVariant.Sd1)
        {
            p = PredictionType.Epsilon;
            size = 512;
        }
        else if (shapes.ContainsKey("v_pred"))
        {
            p = PredictionType.VPrediction;
            size = 768;
        }
        else if (globalStep is { } step)
        {
            bool baseModel = step == Sd2BaseGlobalStep;
            p = baseModel ? PredictionType.Epsilon : PredictionType.VPrediction;
            size = baseModel ? 512 : 768;
            if (options.PredictionType is null || options.ImageSize is null)
                warnings.Add($"SD 2.x with global_step {step}: assumed {(baseModel ? "epsilon at 512 px" : "v-prediction at 768 px")} by diffusers' global_step rule; set SingleFileOptions.PredictionType/ImageSize if that is wrong");
        }
        p = options.PredictionType ?? p;
        size = options.ImageSize ?? size;
        if (p is null)
            warnings.Add("SD 2.x file without a global_step: the prediction type (epsilon for 2.x-base 512, v_prediction for 2.x 768) is unknown; set SingleFileOptions.PredictionType");
        if (size is null && options.ImageSize is null && p is { } known && variant == SdVariant.Sd2)
            size = known == PredictionType.VPrediction ? 768 : 512;
        return (p, size);
    }

    /// <summary>Builds the target tensor of one mapping (a new handle; the sources stay owned by the caller).</summary>
    public static Tensor Apply(TensorMapping m, Func<string, Tensor> get)
    {
        var src = get(m.Sources[0]);
        switch (m.Transform)
        {
            case TensorTransform.Copy:
                return src.detach();
            case TensorTransform.ConvToLinear:
            case TensorTransform.LinearToConv:
                return src.reshape(m.TargetShape(k => get(k).shape));
            case TensorTransform.SliceRows:
                {
                    long n = src.shape[0] / m.Parts;
                    return src.narrow(0, m.Part * n, n).contiguous();
                }
            case TensorTransform.ConcatRows:
                return torch.cat(m.Sources.Select(get).ToList(), 0);
            default:
                throw new ArgumentOutOfRangeException(nameof(m));
        }
    }

    /// <summary>
    /// The diffusers → single-file mapping for three diffusers state dicts given by key → shape:
    /// full single-file key → mapping (sources are diffusers keys of <see cref="TensorMapping.Component"/>).
    /// </summary>
    public static IReadOnlyList<(string Key, TensorMapping Mapping)> PlanToLdm(
        IReadOnlyCollection<string> unetKeys, IReadOnlyCollection<string> vaeKeys, IReadOnlyCollection<string> textKeys, SdVariant variant)
    {
        var unmapped = new List<string>();
        var ignored = new List<string>();
        var result = new List<(string, TensorMapping)>();
        foreach (var m in LdmKeyMap.UnetToLdm(unetKeys, unmapped)) result.Add((UnetPrefix + m.Target, m));
        foreach (var m in LdmKeyMap.VaeToLdm(vaeKeys, unmapped)) result.Add((VaePrefix + m.Target, m));
        if (variant == SdVariant.Sd1)
            foreach (var m in LdmKeyMap.ClipToLdm(textKeys)) result.Add((ClipPrefix + m.Target, m));
        else
            foreach (var m in LdmKeyMap.OpenClipToLdm(textKeys, ignored, unmapped)) result.Add((OpenClipPrefix + m.Target, m));
        if (unmapped.Count > 0)
            throw new ArgumentException($"{unmapped.Count} diffusers key(s) do not fit the Stable Diffusion architecture, e.g. '{string.Join("', '", unmapped.Take(5))}'");
        var dup = result.GroupBy(r => r.Item1).FirstOrDefault(g => g.Count() > 1);
        if (dup != null)
            throw new ArgumentException($"two diffusers tensors map to the same single-file key '{dup.Key}'");
        return result;
    }

    /// <summary>
    /// Writes a single-file <c>.safetensors</c> checkpoint (atomically) from diffusers state dicts, with
    /// exactly the keys and layout of diffusers' <c>convert_diffusers_to_original_stable_diffusion.py</c>.
    /// <paramref name="dtype"/> (e.g. Float16, the script's <c>--half</c>) converts floating-point tensors.
    /// </summary>
    public static void Write(string path, IReadOnlyDictionary<string, Tensor> unetState, IReadOnlyDictionary<string, Tensor> vaeState,
        IReadOnlyDictionary<string, Tensor> textEncoderState, SdVariant variant, ScalarType? dtype = null)
    {
        if (!path.EndsWith(".safetensors", StringComparison.OrdinalIgnoreCase))
            throw new ArgumentException($"'{path}': single files are written as .safetensors only (pickled .ckpt can run code when loaded); use a .safetensors file name", nameof(path));
        var plan = PlanToLdm(unetState.Keys.ToList(), vaeState.Keys.ToList(), textEncoderState.Keys.ToList(), variant);
        var output = new Dictionary<string, Tensor>(StringComparer.Ordinal);
        using var scope = torch.NewDisposeScope();
        foreach (var (key, m) in plan)
        {
            var source = m.Component switch
            {
                ModelComponent.Unet => unetState,
                ModelComponent.Vae => vaeState,
                _ => textEncoderState,
            };
            var t = Apply(m, k => source[k]);
            if (dtype is { } d && t.is_floating_point() && t.dtype != d) t = t.to(d);
            output[key] = t;
        }
        Safetensors.Save(path, output);
    }
}
