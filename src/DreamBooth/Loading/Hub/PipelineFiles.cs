using System.Text.Json;
using System.Text.RegularExpressions;

namespace DreamBooth.Loading.Hub;

/// <summary>Which weight files to fetch: diffusers' <c>variant</c> naming (<c>diffusion_pytorch_model.fp16.safetensors</c>).</summary>
public enum WeightVariant
{
    /// <summary>The default (usually fp32) weights: <c>{name}.safetensors</c>, else <c>{name}.bin</c>.</summary>
    None,
    /// <summary>Half-precision weights <c>{name}.fp16.safetensors</c> (falls back to the default weights per component, as diffusers does).</summary>
    Fp16,
}

/// <summary>A repository file listing does not hold what a pipeline needs.</summary>
public sealed class PipelineFilesException : Exception
{
    /// <summary>Creates the exception naming the missing or bad file.</summary>
    public PipelineFilesException(string fileName, string message, Exception? inner = null) : base(message, inner) => FileName = fileName;

    /// <summary>The file (or component folder) concerned.</summary>
    public string FileName { get; }
}

/// <summary>
/// Chooses the files of a diffusers pipeline repository to download, from <c>model_index.json</c> and the repository listing,
/// the way diffusers' <c>DiffusionPipeline.download</c> does: for each component, its config files and one set of weights.
/// Pure (no I/O), so the same rules decide whether a cached snapshot is complete.
/// </summary>
public static partial class PipelineFiles
{
    /// <summary>The pipeline's index file at the repository root.</summary>
    public const string ModelIndex = "model_index.json";

    /// <summary>Components that are skipped unless the safety checker is asked for.</summary>
    public static readonly IReadOnlySet<string> SafetyComponents = new HashSet<string> { "safety_checker", "feature_extractor" };

    static readonly string[] TokenizerFiles =
        ["vocab.json", "merges.txt", "tokenizer_config.json", "special_tokens_map.json", "added_tokens.json", "tokenizer.json"];

    // diffusers models use diffusion_pytorch_model.*, transformers models model.safetensors / pytorch_model.bin.
    static readonly string[] SafetensorsBases = ["diffusion_pytorch_model", "model"];
    static readonly string[] BinBases = ["diffusion_pytorch_model", "pytorch_model"];

    /// <summary>The component names of a <c>model_index.json</c> with their (library, class) pair; null entries are absent components.</summary>
    public static IReadOnlyList<(string Name, string Library, string ClassName)> Components(string modelIndexJson)
    {
        JsonDocument doc;
        try { doc = JsonDocument.Parse(modelIndexJson); }
        catch (JsonException e) { throw new PipelineFilesException(ModelIndex, $"{ModelIndex} is not valid JSON ({e.Message})", e); }
        using (doc)
        {
            if (doc.RootElement.ValueKind != JsonValueKind.Object)
                throw new PipelineFilesException(ModelIndex, $"{ModelIndex} is not a JSON object");
            var list = new List<(string, string, string)>();
            foreach (var p in doc.RootElement.EnumerateObject())
            {
                if (p.Name.StartsWith('_') || p.Value.ValueKind != JsonValueKind.Array || p.Value.GetArrayLength() != 2) continue;
                var lib = p.Value[0];
                var cls = p.Value[1];
                if (lib.ValueKind != JsonValueKind.String || cls.ValueKind != JsonValueKind.String) continue; // [null, null]: not present
                if (!ComponentNameRegex().IsMatch(p.Name))
                    throw new PipelineFilesException(ModelIndex, $"{ModelIndex} names a component '{p.Name}' that is not a plain folder name");
                list.Add((p.Name, lib.GetString()!, cls.GetString()!));
            }
            if (list.Count == 0)
                throw new PipelineFilesException(ModelIndex, $"{ModelIndex} lists no components (expected unet, vae, text_encoder, tokenizer, scheduler)");
            return list;
        }
    }

    /// <summary>
    /// The files to download, <c>model_index.json</c> first. Throws <see cref="PipelineFilesException"/> naming the component
    /// whose config or weights are missing from <paramref name="repoFiles"/>.
    /// </summary>
    public static IReadOnlyList<string> Select(string modelIndexJson, IEnumerable<string> repoFiles, WeightVariant variant, bool includeSafetyChecker)
    {
        var files = new HashSet<string>(repoFiles, StringComparer.Ordinal);
        var result = new List<string> { ModelIndex };
        foreach (var (name, _, cls) in Components(modelIndexJson))
        {
            if (!includeSafetyChecker && SafetyComponents.Contains(name)) continue;
            var inFolder = files.Where(f => f.StartsWith(name + "/", StringComparison.Ordinal) && f.IndexOf('/', name.Length + 1) < 0)
                .Select(f => f[(name.Length + 1)..]).ToHashSet(StringComparer.Ordinal);
            if (inFolder.Count == 0)
                throw new PipelineFilesException(name, $"component '{name}' ({cls}) is listed in {ModelIndex} but the folder {name}/ is missing");
            result.AddRange(SelectComponent(name, cls, inFolder, variant).Select(f => $"{name}/{f}"));
        }
        return result;
    }

    static IEnumerable<string> SelectComponent(string name, string cls, HashSet<string> files, WeightVariant variant)
    {
        if (cls.Contains("Tokenizer", StringComparison.Ordinal))
        {
            var chosen = TokenizerFiles.Where(files.Contains).ToList();
            if (cls.StartsWith("CLIPTokenizer", StringComparison.Ordinal) && !(files.Contains("vocab.json") && files.Contains("merges.txt")) && !files.Contains("tokenizer.json"))
                throw new PipelineFilesException(name, $"component '{name}' ({cls}) needs vocab.json and merges.txt, which are missing");
            if (chosen.Count == 0)
                throw new PipelineFilesException(name, $"component '{name}' ({cls}) has no tokenizer files");
            return chosen;
        }
        if (cls.Contains("Scheduler", StringComparison.Ordinal))
            return files.Contains("scheduler_config.json") ? ["scheduler_config.json"]
                : throw new PipelineFilesException(name, $"component '{name}' ({cls}) has no scheduler_config.json");
        if (cls.Contains("ImageProcessor", StringComparison.Ordinal) || cls.Contains("FeatureExtractor", StringComparison.Ordinal))
            return files.Contains("preprocessor_config.json") ? ["preprocessor_config.json"]
                : throw new PipelineFilesException(name, $"component '{name}' ({cls}) has no preprocessor_config.json");

        // A model: config.json plus one set of weights.
        if (!files.Contains("config.json"))
            throw new PipelineFilesException(name, $"component '{name}' ({cls}) has no config.json");
        var weights = SelectWeights(files, variant)
            ?? throw new PipelineFilesException(name, $"component '{name}' ({cls}) has no weights (looked for {string.Join(", ", WeightCandidates(variant).Select(c => c.Single))})");
        return ["config.json", .. weights];
    }

    /// <summary>Preference: {base}.{variant}.safetensors, {base}.safetensors, {base}.{variant}.bin, {base}.bin;
    /// each also as a sharded set ({base}[.{variant}]-0000i-of-0000n with its index json).</summary>
    static IEnumerable<(string Single, string Index, Regex Shard)> WeightCandidates(WeightVariant variant)
    {
        var v = variant switch { WeightVariant.Fp16 => "fp16", _ => null };
        IEnumerable<(string? Variant, string Ext, string[] Bases)> order = v is null
            ? [(null, "safetensors", SafetensorsBases), (null, "bin", BinBases)]
            : [(v, "safetensors", SafetensorsBases), (null, "safetensors", SafetensorsBases), (v, "bin", BinBases), (null, "bin", BinBases)];
        foreach (var (va, ext, bases) in order)
            foreach (var b in bases)
            {
                var single = va is null ? $"{b}.{ext}" : $"{b}.{va}.{ext}";
                var index = va is null ? $"{b}.{ext}.index.json" : $"{b}.{ext}.index.{va}.json";
                var stem = Regex.Escape(va is null ? b : $"{b}.{va}");
                yield return (single, index, new Regex($"^{stem}-\\d{{5}}-of-\\d{{5}}\\.{Regex.Escape(ext)}$"));
            }
    }

    static List<string>? SelectWeights(HashSet<string> files, WeightVariant variant)
    {
        foreach (var (single, index, shard) in WeightCandidates(variant))
        {
            if (files.Contains(single)) return [single];
            if (files.Contains(index))
            {
                var shards = files.Where(f => shard.IsMatch(f)).Order(StringComparer.Ordinal).ToList();
                if (shards.Count > 0) return [index, .. shards];
            }
        }
        return null;
    }

    [GeneratedRegex("^[A-Za-z0-9_][A-Za-z0-9_.-]*$")]
    private static partial Regex ComponentNameRegex();
}
