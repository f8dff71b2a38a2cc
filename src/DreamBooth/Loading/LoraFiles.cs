using DreamBooth.Models.Common;
using TorchSharp;
using static TorchSharp.torch;

namespace DreamBooth.Loading;

/// <summary>LoRA weight file formats.</summary>
public enum LoraFormat
{
    /// <summary>kohya-ss / AUTOMATIC1111: <c>lora_unet_down_blocks_0_…_to_q.lora_down.weight</c>, <c>.lora_up.weight</c>, <c>.alpha</c>.</summary>
    Kohya,
    /// <summary>diffusers (PEFT): <c>unet.down_blocks.0.….to_q.lora_A.weight</c> / <c>.lora_B.weight</c>; alpha folded into B.</summary>
    Diffusers,
}

/// <summary>Reads and writes LoRA adapters in the kohya / AUTOMATIC1111 and diffusers formats.</summary>
public static class LoraFiles
{
    static string KohyaPrefix(string prefix) => prefix == "unet" ? "lora_unet_" : "lora_te_";

    /// <summary>Writes the adapters of the given networks to one <c>.safetensors</c> file (atomic).</summary>
    public static void Save(string path, LoraFormat format, params LoraNetwork[] networks)
    {
        var dict = new Dictionary<string, Tensor>(StringComparer.Ordinal);
        var meta = new Dictionary<string, string> { ["format"] = "pt" };
        try
        {
            foreach (var net in networks)
            {
                foreach (var (p, a) in net.Adapters)
                {
                    if (format == LoraFormat.Kohya)
                    {
                        var key = KohyaPrefix(net.Prefix) + p.Replace('.', '_');
                        dict[key + ".lora_down.weight"] = a.Down.detach().to(ScalarType.Float32);
                        dict[key + ".lora_up.weight"] = a.Up.detach().to(ScalarType.Float32);
                        dict[key + ".alpha"] = torch.tensor((float)a.Alpha);
                    }
                    else
                    {
                        var key = $"{net.Prefix}.{p}";
                        dict[key + ".lora_A.weight"] = a.Down.detach().to(ScalarType.Float32);
                        // PEFT files carry no alpha (alpha = rank is assumed on load): fold alpha / rank into B
                        dict[key + ".lora_B.weight"] = (a.Up.detach() * (a.Alpha / a.Rank)).to(ScalarType.Float32);
                    }
                    meta["ss_network_dim"] = a.Rank.ToString(System.Globalization.CultureInfo.InvariantCulture);
                    meta["ss_network_alpha"] = a.Alpha.ToString(System.Globalization.CultureInfo.InvariantCulture);
                }
            }
            if (format == LoraFormat.Kohya) meta["ss_network_module"] = "networks.lora";
            Safetensors.Save(path, dict, meta);
        }
        finally
        {
            foreach (var t in dict.Values) t.Dispose();
        }
    }

    /// <summary>Detects the format of a LoRA file from its keys.</summary>
    public static LoraFormat DetectFormat(IEnumerable<string> keys, string path)
    {
        foreach (var k in keys)
        {
            if (k.StartsWith("lora_unet_", StringComparison.Ordinal) || k.StartsWith("lora_te_", StringComparison.Ordinal)) return LoraFormat.Kohya;
            if (k.Contains(".lora_A.", StringComparison.Ordinal) || k.Contains(".lora_B.", StringComparison.Ordinal)
                || k.Contains(".lora.down.", StringComparison.Ordinal)) return LoraFormat.Diffusers;
        }
        throw new ModelLoadException(path, "not a LoRA file: no kohya (lora_unet_…) or diffusers (….lora_A.weight) keys");
    }

    /// <summary>
    /// Reads a LoRA file into per-network weight maps keyed by our module paths, resolving kohya's underscore names
    /// against the given models' projection paths.
    /// </summary>
    public static Dictionary<string, Dictionary<string, (Tensor Down, Tensor Up, double Alpha)>> Read(string path, nn.Module unet, nn.Module? textEncoder)
    {
        var raw = Safetensors.Load(path);
        var format = DetectFormat(raw.Keys, path);
        var result = new Dictionary<string, Dictionary<string, (Tensor, Tensor, double)>>
        {
            ["unet"] = new(StringComparer.Ordinal),
            ["text_encoder"] = new(StringComparer.Ordinal),
        };
        var lookup = new Dictionary<string, (string Net, string Path)>(StringComparer.Ordinal);
        foreach (var t in LoraNetwork.Targets(unet)) lookup[KohyaPrefix("unet") + t.Path.Replace('.', '_')] = ("unet", t.Path);
        if (textEncoder is not null)
            foreach (var t in LoraNetwork.Targets(textEncoder)) lookup[KohyaPrefix("text_encoder") + t.Path.Replace('.', '_')] = ("text_encoder", t.Path);

        var unknown = new List<string>();
        foreach (var key in raw.Keys)
        {
            string module, kind;
            if (format == LoraFormat.Kohya)
            {
                int dot = key.IndexOf('.', StringComparison.Ordinal);
                if (dot < 0) { unknown.Add(key); continue; }
                module = key[..dot];
                kind = key[(dot + 1)..];
                if (kind != "lora_down.weight") continue;
                if (!lookup.TryGetValue(module, out var target))
                {
                    if (module.StartsWith("lora_te_", StringComparison.Ordinal) && textEncoder is null) continue;
                    unknown.Add(module);
                    continue;
                }
                var up = raw.GetValueOrDefault(module + ".lora_up.weight") ?? throw new ModelLoadException(path, $"{module} has lora_down but no lora_up");
                var down = raw[key];
                double alpha = raw.TryGetValue(module + ".alpha", out var al) ? al.to(ScalarType.Float64).item<double>() : down.shape[0];
                result[target.Net][target.Path] = (down, up, alpha);
            }
            else
            {
                string? suffixDown = key.EndsWith(".lora_A.weight", StringComparison.Ordinal) ? ".lora_A.weight"
                    : key.EndsWith(".lora.down.weight", StringComparison.Ordinal) ? ".lora.down.weight" : null;
                if (suffixDown is null) continue;
                var stem = key[..^suffixDown.Length];
                var upKey = stem + (suffixDown == ".lora_A.weight" ? ".lora_B.weight" : ".lora.up.weight");
                var up = raw.GetValueOrDefault(upKey) ?? throw new ModelLoadException(path, $"{stem} has no {upKey}");
                var net = stem.StartsWith("unet.", StringComparison.Ordinal) ? "unet" : stem.StartsWith("text_encoder.", StringComparison.Ordinal) ? "text_encoder" : null;
                if (net is null) { unknown.Add(stem); continue; }
                if (net == "text_encoder" && textEncoder is null) continue;
                var p = stem[(net.Length + 1)..];
                // older diffusers attention-processor names
                p = p.Replace(".processor.to_q_lora", ".to_q", StringComparison.Ordinal).Replace(".processor.to_k_lora", ".to_k", StringComparison.Ordinal)
                     .Replace(".processor.to_v_lora", ".to_v", StringComparison.Ordinal).Replace(".processor.to_out_lora", ".to_out.0", StringComparison.Ordinal);
                result[net][p] = (raw[key], up, raw[key].shape[0]);
            }
        }
        if (unknown.Count > 0)
            throw new ModelLoadException(path, $"{unknown.Count} LoRA modules do not match this model (e.g. {string.Join(", ", unknown.Take(3))}); it was trained for another architecture");
        return result;
    }

    /// <summary>Loads a LoRA file onto a UNet (and optionally a text encoder) with a strength multiplier.</summary>
    public static (LoraNetwork Unet, LoraNetwork? TextEncoder) Apply(string path, nn.Module unet, nn.Module? textEncoder, double multiplier = 1.0)
    {
        var w = Read(path, unet, textEncoder);
        try
        {
            var u = LoraNetwork.AttachWeights(unet, "unet", w["unet"], multiplier, path);
            var t = textEncoder is not null && w["text_encoder"].Count > 0 ? LoraNetwork.AttachWeights(textEncoder, "text_encoder", w["text_encoder"], multiplier, path) : null;
            return (u, t);
        }
        finally
        {
            foreach (var net in w.Values)
                foreach (var (d, u, _) in net.Values) { d.Dispose(); u.Dispose(); }
        }
    }
}
