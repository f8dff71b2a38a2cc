using System.Text;
using System.Text.Json;
using DreamBooth.Models.Clip;
using DreamBooth.Models.Common;
using DreamBooth.Models.Unet;
using DreamBooth.Models.Vae;
using TorchSharp;

namespace DreamBooth.Loading;

/// <summary>What one component folder holds.</summary>
public sealed record ComponentInfo(
    string Name, string Folder, string ClassName, string? WeightsFile, long WeightsBytes,
    IReadOnlyDictionary<string, long> TensorsByDType, long ParametersInFile, long? ParametersFromConfig,
    IReadOnlyList<(string Key, string Value)> Summary, string? Problem);

/// <summary>A model folder at a glance: components, configs, parameter counts and dtypes (no weights loaded).</summary>
public sealed record ModelInspection(string Folder, string Kind, IReadOnlyList<ComponentInfo> Components)
{
    public string ToText()
    {
        var sb = new StringBuilder();
        sb.AppendLine($"{Folder}  ({Kind})");
        foreach (var c in Components)
        {
            sb.AppendLine($"  {c.Name}: {c.ClassName}");
            if (c.Problem is not null) { sb.AppendLine($"    PROBLEM: {c.Problem}"); continue; }
            foreach (var (k, v) in c.Summary) sb.AppendLine($"    {k,-24} {v}");
            if (c.WeightsFile is not null)
            {
                sb.AppendLine($"    {"weights",-24} {Path.GetFileName(c.WeightsFile)} ({FormatBytes(c.WeightsBytes)})");
                sb.AppendLine($"    {"dtypes",-24} {string.Join(", ", c.TensorsByDType.Select(kv => $"{kv.Key} × {kv.Value}"))}");
                sb.AppendLine($"    {"parameters (file)",-24} {c.ParametersInFile:N0}");
            }
            if (c.ParametersFromConfig is long p)
            {
                var check = c.WeightsFile is null ? "" : p == c.ParametersInFile ? "  (matches the file)" : "  (DIFFERS from the file)";
                sb.AppendLine($"    {"parameters (config)",-24} {p:N0}{check}");
            }
        }
        return sb.ToString();
    }

    public static string FormatBytes(long b) => b switch
    {
        >= 1L << 30 => $"{b / (double)(1L << 30):F2} GiB",
        >= 1L << 20 => $"{b / (double)(1L << 20):F1} MiB",
        >= 1L << 10 => $"{b / 1024.0:F1} KiB",
        _ => $"{b} B",
    };
}

/// <summary>Inspects a diffusers model folder (or one component folder) without loading weights: configs are built on the meta device.</summary>
public static class ModelInspector
{
    public static ModelInspection Inspect(string folder)
    {
        folder = Path.GetFullPath(folder);
        if (!Directory.Exists(folder))
            throw new ModelLoadException(folder, "folder not found: pass a diffusers model folder (with model_index.json) or a component folder (with config.json)");
        var index = Path.Combine(folder, "model_index.json");
        if (File.Exists(index))
        {
            var comps = new List<ComponentInfo>();
            using var doc = ReadJson(index);
            string cls = doc.RootElement.TryGetProperty("_class_name", out var c) ? c.GetString() ?? "?" : "?";
            foreach (var prop in doc.RootElement.EnumerateObject().Where(p => !p.Name.StartsWith('_')))
            {
                if (prop.Value.ValueKind != JsonValueKind.Array) continue;
                var sub = Path.Combine(folder, prop.Name);
                var declared = prop.Value.EnumerateArray().Select(e => e.ValueKind == JsonValueKind.String ? e.GetString() : null).LastOrDefault() ?? "null";
                if (declared == "null") continue;
                comps.Add(Directory.Exists(sub) ? InspectComponent(prop.Name, sub, declared)
                    : new ComponentInfo(prop.Name, sub, declared, null, 0, new Dictionary<string, long>(), 0, null, [], $"folder {prop.Name}/ is missing"));
            }
            return new ModelInspection(folder, cls, comps);
        }
        if (File.Exists(Path.Combine(folder, "config.json")))
            return new ModelInspection(folder, "component", [InspectComponent(Path.GetFileName(folder), folder, null)]);
        throw new ModelLoadException(folder, "not a model folder: it has neither model_index.json (a diffusers pipeline) nor config.json (one component)");
    }

    static JsonDocument ReadJson(string path)
    {
        try { return JsonDocument.Parse(File.ReadAllText(path)); }
        catch (JsonException e) { throw new ModelLoadException(path, $"invalid JSON: {e.Message}", e); }
    }

    static ComponentInfo InspectComponent(string name, string folder, string? declaredClass)
    {
        try
        {
            if (declaredClass is "CLIPTokenizer" or "CLIPTokenizerFast" || name == "tokenizer")
                return Tokenizer(name, folder, declaredClass ?? "CLIPTokenizer");
            if (name == "scheduler" || (declaredClass?.EndsWith("Scheduler", StringComparison.Ordinal) ?? false))
                return Scheduler(name, folder, declaredClass ?? "?");
            var kind = Parity.ModelParity.DetectKind(folder) ?? declaredClass ?? "?";
            (string? weights, long bytes, Dictionary<string, long> dtypes, long fileParams) = WeightsInfo(folder, kind);
            long? fromConfig = null;
            var summary = new List<(string, string)>();
            switch (kind)
            {
                case "UNet2DConditionModel":
                {
                    var (p, cfg) = ComponentLoader.ReadConfig<UNet2DConditionConfig>(folder);
                    cfg.Validate(p);
                    summary.Add(("block_out_channels", string.Join(", ", cfg.BlockOutChannels)));
                    summary.Add(("layers_per_block", cfg.LayersPerBlock.ToString(System.Globalization.CultureInfo.InvariantCulture)));
                    summary.Add(("attention heads", string.Join(", ", cfg.HeadsPerBlock)));
                    summary.Add(("cross_attention_dim", cfg.CrossAttentionDim.ToString(System.Globalization.CultureInfo.InvariantCulture)));
                    summary.Add(("linear projection", cfg.UseLinearProjection.ToString()));
                    summary.Add(("upcast attention", cfg.UpcastAttention.ToString()));
                    summary.Add(("sample_size (latent)", cfg.SampleSize.ToString(System.Globalization.CultureInfo.InvariantCulture)));
                    using var m = new UNet2DConditionModel(cfg, ModelPlacement.Meta);
                    fromConfig = StateDicts.ParameterCount(m);
                    break;
                }
                case "AutoencoderKL":
                {
                    var (p, cfg) = ComponentLoader.ReadConfig<AutoencoderKLConfig>(folder);
                    cfg.Validate(p);
                    summary.Add(("block_out_channels", string.Join(", ", cfg.BlockOutChannels)));
                    summary.Add(("latent_channels", cfg.LatentChannels.ToString(System.Globalization.CultureInfo.InvariantCulture)));
                    summary.Add(("downscale factor", cfg.DownscaleFactor.ToString(System.Globalization.CultureInfo.InvariantCulture)));
                    summary.Add(("scaling_factor", cfg.ScalingFactor.ToString(System.Globalization.CultureInfo.InvariantCulture)));
                    summary.Add(("sample_size (pixels)", cfg.SampleSize.ToString(System.Globalization.CultureInfo.InvariantCulture)));
                    using var m = new AutoencoderKL(cfg, ModelPlacement.Meta);
                    fromConfig = StateDicts.ParameterCount(m);
                    break;
                }
                case "CLIPTextModel":
                {
                    var (p, cfg) = ComponentLoader.ReadConfig<ClipTextConfig>(folder);
                    cfg.Validate(p);
                    summary.Add(("hidden_size", cfg.HiddenSize.ToString(System.Globalization.CultureInfo.InvariantCulture)));
                    summary.Add(("layers / heads", $"{cfg.NumHiddenLayers} / {cfg.NumAttentionHeads}"));
                    summary.Add(("hidden_act", cfg.HiddenAct));
                    summary.Add(("vocab / positions", $"{cfg.VocabSize} / {cfg.MaxPositionEmbeddings}"));
                    using var m = new ClipTextModel(cfg, ModelPlacement.Meta);
                    fromConfig = StateDicts.ParameterCount(m);
                    break;
                }
            }
            return new ComponentInfo(name, folder, kind, weights, bytes, dtypes, fileParams, fromConfig, summary, null);
        }
        catch (ModelLoadException e)
        {
            return new ComponentInfo(name, folder, declaredClass ?? "?", null, 0, new Dictionary<string, long>(), 0, null, [], e.Message);
        }
    }

    static (string?, long, Dictionary<string, long>, long) WeightsInfo(string folder, string kind)
    {
        string[] names = kind == "CLIPTextModel" ? ["model", "pytorch_model"] : ["diffusion_pytorch_model"];
        string path;
        try { path = ComponentLoader.FindWeights(folder, names, null); }
        catch (ModelLoadException) { return (null, 0, new Dictionary<string, long>(), 0); }
        var dtypes = new Dictionary<string, long>();
        long count = 0;
        if (path.EndsWith(".safetensors", StringComparison.OrdinalIgnoreCase))
        {
            var h = Safetensors.ReadHeader(path);
            foreach (var e in h.Entries)
            {
                dtypes[e.DType] = dtypes.GetValueOrDefault(e.DType) + 1;
                if (!e.Name.EndsWith("position_ids", StringComparison.Ordinal))
                    count += e.Shape.Aggregate(1L, (a, b) => a * b);
            }
        }
        return (path, new FileInfo(path).Length, dtypes, count);
    }

    static ComponentInfo Tokenizer(string name, string folder, string cls)
    {
        var summary = new List<(string, string)>();
        var vocab = Path.Combine(folder, "vocab.json");
        var merges = Path.Combine(folder, "merges.txt");
        if (!File.Exists(vocab) || !File.Exists(merges))
            return new ComponentInfo(name, folder, cls, null, 0, new Dictionary<string, long>(), 0, null, summary, "vocab.json or merges.txt is missing");
        using (var doc = ReadJson(vocab)) summary.Add(("vocabulary", $"{doc.RootElement.EnumerateObject().Count():N0} tokens"));
        summary.Add(("merges", $"{File.ReadLines(merges).Count(l => l.Length > 0 && !l.StartsWith("#version", StringComparison.Ordinal)):N0}"));
        var tc = Path.Combine(folder, "tokenizer_config.json");
        if (File.Exists(tc))
        {
            using var doc = ReadJson(tc);
            foreach (var f in new[] { "model_max_length", "pad_token" })
                if (doc.RootElement.TryGetProperty(f, out var v))
                    summary.Add((f, v.ValueKind == JsonValueKind.Object && v.TryGetProperty("content", out var content) ? content.GetString() ?? "" : v.ToString()));
        }
        return new ComponentInfo(name, folder, cls, null, 0, new Dictionary<string, long>(), 0, null, summary, null);
    }

    static ComponentInfo Scheduler(string name, string folder, string cls)
    {
        var summary = new List<(string, string)>();
        var path = Path.Combine(folder, "scheduler_config.json");
        if (!File.Exists(path))
            return new ComponentInfo(name, folder, cls, null, 0, new Dictionary<string, long>(), 0, null, summary, "scheduler_config.json is missing");
        using var doc = ReadJson(path);
        foreach (var f in new[] { "_class_name", "prediction_type", "beta_schedule", "num_train_timesteps", "timestep_spacing", "steps_offset" })
            if (doc.RootElement.TryGetProperty(f, out var v)) summary.Add((f, v.ToString()));
        if (!doc.RootElement.TryGetProperty("prediction_type", out _)) summary.Add(("prediction_type", "epsilon (default)"));
        return new ComponentInfo(name, folder, cls, null, 0, new Dictionary<string, long>(), 0, null, summary, null);
    }
}
