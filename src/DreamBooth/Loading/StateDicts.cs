using System.Text;
using System.Text.Json;
using TorchSharp;
using static TorchSharp.torch;

namespace DreamBooth.Loading;

/// <summary>Reading weight files of any supported format and loading them strictly into modules.</summary>
public static class StateDicts
{
    /// <summary>Loads a weight file: <c>.safetensors</c>, a sharded <c>*.index.json</c>, or a PyTorch pickle (<c>.bin/.ckpt/.pt/.pth</c>).</summary>
    public static Dictionary<string, Tensor> Load(string path)
    {
        var name = Path.GetFileName(path).ToLowerInvariant();
        if (name.EndsWith(".safetensors", StringComparison.Ordinal)) return Safetensors.Load(path);
        if (name.EndsWith(".index.json", StringComparison.Ordinal)) return LoadSharded(path);
        if (name.EndsWith(".bin", StringComparison.Ordinal) || name.EndsWith(".ckpt", StringComparison.Ordinal)
            || name.EndsWith(".pt", StringComparison.Ordinal) || name.EndsWith(".pth", StringComparison.Ordinal))
            return PickleLoader(path);
        throw new ModelLoadException(path, "unknown weight file type (expected .safetensors, .bin, .ckpt, .pt or a sharded .index.json)");
    }

    /// <summary>The PyTorch-pickle reader (set by the hardened reader in Loading/Pickle).</summary>
    internal static Func<string, Dictionary<string, Tensor>> PickleLoader { get; set; } = Pickle.TorchPickle.LoadStateDict;

    static Dictionary<string, Tensor> LoadSharded(string indexPath)
    {
        var dir = Path.GetDirectoryName(Path.GetFullPath(indexPath))!;
        Dictionary<string, string> map;
        try
        {
            using var doc = JsonDocument.Parse(File.ReadAllText(indexPath));
            if (!doc.RootElement.TryGetProperty("weight_map", out var wm) || wm.ValueKind != JsonValueKind.Object)
                throw new ModelLoadException(indexPath, "sharded index has no weight_map object");
            map = wm.EnumerateObject().ToDictionary(p => p.Name, p => p.Value.GetString() ?? "");
        }
        catch (JsonException e) { throw new ModelLoadException(indexPath, $"invalid JSON: {e.Message}", e); }
        var result = new Dictionary<string, Tensor>(StringComparer.Ordinal);
        try
        {
            foreach (var shard in map.Values.Distinct())
            {
                if (shard.Contains('/') || shard.Contains('\\') || shard.Contains(".."))
                    throw new ModelLoadException(indexPath, $"shard name '{shard}' must be a file name in the same folder");
                foreach (var (k, v) in Load(Path.Combine(dir, shard))) result[k] = v;
            }
        }
        catch
        {
            foreach (var t in result.Values) t.Dispose();
            throw;
        }
        return result;
    }

    /// <summary>
    /// Copies <paramref name="source"/> into <paramref name="module"/>'s parameters and buffers, converting dtype and device.
    /// Strict: every missing, unexpected or mis-shaped tensor is listed in one <see cref="ModelLoadException"/> naming
    /// <paramref name="path"/>, and nothing is copied unless everything matches. Keys for which
    /// <paramref name="ignore"/> returns true are dropped silently (e.g. CLIP's <c>position_ids</c> buffer).
    /// </summary>
    public static void LoadStrict(nn.Module module, IReadOnlyDictionary<string, Tensor> source, string path, Func<string, bool>? ignore = null)
    {
        var target = module.state_dict();
        var missing = target.Keys.Where(k => !source.ContainsKey(k)).OrderBy(k => k, StringComparer.Ordinal).ToList();
        var unexpected = source.Keys.Where(k => !target.ContainsKey(k) && (ignore is null || !ignore(k))).OrderBy(k => k, StringComparer.Ordinal).ToList();
        var misShaped = new List<string>();
        foreach (var (k, t) in target)
        {
            if (!source.TryGetValue(k, out var s)) continue;
            if (!s.shape.SequenceEqual(t.shape))
                misShaped.Add($"{k}: file has [{string.Join(", ", s.shape)}], model expects [{string.Join(", ", t.shape)}]");
            else if (s.dtype is ScalarType.Bool || (IsFloat(t.dtype) && !IsFloat(s.dtype)))
                misShaped.Add($"{k}: file has dtype {s.dtype}, model expects {t.dtype}");
        }
        if (missing.Count + unexpected.Count + misShaped.Count > 0)
        {
            var sb = new StringBuilder($"weights do not match the {module.GetName()} built from its config");
            Append(sb, "missing", missing);
            Append(sb, "unexpected", unexpected);
            Append(sb, "wrong shape", misShaped);
            sb.Append(". Check that config.json belongs to these weights.");
            throw new ModelLoadException(path, sb.ToString());
        }
        using (torch.no_grad())
        {
            foreach (var (k, t) in target)
            {
                var s = source[k];
                t.copy_(s);
            }
        }
    }

    static bool IsFloat(ScalarType t) => t is ScalarType.Float16 or ScalarType.BFloat16 or ScalarType.Float32 or ScalarType.Float64;

    static void Append(StringBuilder sb, string what, List<string> items)
    {
        if (items.Count == 0) return;
        const int Show = 25;
        sb.Append($"; {items.Count} {what}: ").Append(string.Join(", ", items.Take(Show)));
        if (items.Count > Show) sb.Append($", … and {items.Count - Show} more");
    }

    /// <summary>Number of elements over all parameters.</summary>
    public static long ParameterCount(nn.Module module) => module.parameters().Sum(p => p.numel());

    /// <summary>Sorted (name, shape, dtype) listing of a module's state dict, as in <c>keys.tsv</c>.</summary>
    public static IReadOnlyList<(string Name, long[] Shape, ScalarType DType)> Listing(nn.Module module) =>
        module.state_dict().Select(kv => (kv.Key, kv.Value.shape, kv.Value.dtype)).OrderBy(x => x.Key, StringComparer.Ordinal).ToList();
}
