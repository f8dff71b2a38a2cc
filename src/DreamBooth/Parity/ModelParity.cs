using System.Text.Json;
using DreamBooth.Loading;
using DreamBooth.Models.Clip;
using DreamBooth.Models.Unet;
using DreamBooth.Models.Vae;
using TorchSharp;
using static TorchSharp.torch;

namespace DreamBooth.Parity;

/// <summary>
/// Runs a model fixture folder (<c>config.json</c> + weights + <c>inputs.safetensors</c> / <c>outputs.safetensors</c>
/// [+ <c>intermediates.safetensors</c>]) through our UNet, VAE or CLIP text model and compares every output.
/// </summary>
public static class ModelParity
{
    public const double Atol = 1e-4, Rtol = 1e-4;

    /// <summary>Which model a fixture folder holds, from its config (null when it is not a model folder).</summary>
    public static string? DetectKind(string folder)
    {
        var cfg = Path.Combine(folder, "config.json");
        if (!File.Exists(cfg)) return null;
        using var doc = JsonDocument.Parse(File.ReadAllText(cfg));
        var root = doc.RootElement;
        if (root.TryGetProperty("_class_name", out var cn) && cn.ValueKind == JsonValueKind.String)
            return cn.GetString();
        if (root.TryGetProperty("model_type", out var mt) && mt.GetString() is "clip_text_model" or "clip")
            return "CLIPTextModel";
        if (root.TryGetProperty("architectures", out var ar) && ar.ValueKind == JsonValueKind.Array && ar.EnumerateArray().Any(a => a.GetString() == "CLIPTextModel"))
            return "CLIPTextModel";
        return null;
    }

    public static ParityReport Run(string folder)
    {
        var kind = DetectKind(folder) ?? throw new ModelLoadException(folder, "not a model fixture folder (no config.json with _class_name or model_type)");
        var inputsPath = Path.Combine(folder, "inputs.safetensors");
        var outputsPath = Path.Combine(folder, "outputs.safetensors");
        var interPath = Path.Combine(folder, "intermediates.safetensors");
        using var scope = torch.NewDisposeScope();
        var inputs = Safetensors.Load(inputsPath);
        var outputs = Safetensors.Load(outputsPath);
        var inter = File.Exists(interPath) ? Safetensors.Load(interPath) : new Dictionary<string, Tensor>();
        var computed = new Dictionary<string, Tensor>(StringComparer.Ordinal);
        var observed = new Dictionary<string, Tensor>(StringComparer.Ordinal);
        using (torch.no_grad())
        {
            switch (kind)
            {
                case "UNet2DConditionModel": RunUnet(folder, inputs, computed, observed); break;
                case "AutoencoderKL": RunVae(folder, inputs, computed, observed); break;
                case "CLIPTextModel": RunClip(folder, inputs, computed); break;
                default: throw new ModelLoadException(Path.Combine(folder, "config.json"), $"no parity runner for model class '{kind}'");
            }
        }
        var comparisons = new List<ParityComparison>();
        foreach (var (name, expected) in outputs.OrderBy(k => k.Key, StringComparer.Ordinal))
        {
            comparisons.Add(computed.TryGetValue(name, out var actual)
                ? TensorCompare.Compare(name, actual, expected, Atol, Rtol)
                : new ParityComparison(name, double.PositiveInfinity, Atol, Rtol, false, "output not produced by this runner (unknown output name)"));
        }
        foreach (var (name, expected) in inter.OrderBy(k => k.Key, StringComparer.Ordinal))
        {
            // intermediates are recorded for batch element 0 only
            comparisons.Add(observed.TryGetValue(name, out var actual)
                ? TensorCompare.Compare("intermediate " + name, actual[..1], expected, Atol, Rtol)
                : new ParityComparison("intermediate " + name, double.PositiveInfinity, Atol, Rtol, false, "intermediate not observed"));
        }
        return new ParityReport(folder, kind, comparisons);
    }

    static void RunUnet(string folder, Dictionary<string, Tensor> inputs, Dictionary<string, Tensor> computed, Dictionary<string, Tensor> observed)
    {
        using var unet = ComponentLoader.LoadUnet(folder);
        var sample = inputs["sample"];
        var ehs = inputs["encoder_hidden_states"];
        bool first = true;
        unet.Observer = (n, t) => { if (first && !observed.ContainsKey(n)) observed[n] = t.detach().clone(); };
        computed["sample"] = unet.Forward(sample, inputs["timestep"], ehs);
        first = false;
        foreach (var (name, t) in inputs)
        {
            // further timestep variants: "timestep_scalar" -> "sample_timestep_scalar"
            if (name.StartsWith("timestep_", StringComparison.Ordinal))
                computed["sample_" + name] = unet.Forward(sample, t, ehs);
        }
    }

    static void RunVae(string folder, Dictionary<string, Tensor> inputs, Dictionary<string, Tensor> computed, Dictionary<string, Tensor> observed)
    {
        using var vae = ComponentLoader.LoadVae(folder);
        bool recording = true;
        vae.Observer = (n, t) => { if (recording && !observed.ContainsKey(n)) observed[n] = t.detach().clone(); };
        if (inputs.TryGetValue("image", out var image))
        {
            var dist = vae.Encode(image);
            computed["latent_dist.mean"] = dist.Mean;
            computed["latent_dist.logvar"] = dist.LogVar;
            computed["latent_dist.std"] = dist.Std;
            computed["latent_dist.var"] = dist.Var;
            if (inputs.TryGetValue("posterior_noise", out var noise)) computed["latent_sample"] = dist.Sample(noise);
            if (inputs.TryGetValue("latents", out var latents)) computed["decoded"] = vae.Decode(latents);
            recording = false;
            computed["reconstruction"] = vae.Decode(dist.Mean);
        }
        else if (inputs.TryGetValue("latents", out var latents))
        {
            computed["decoded"] = vae.Decode(latents);
        }
    }

    static void RunClip(string folder, Dictionary<string, Tensor> inputs, Dictionary<string, Tensor> computed)
    {
        using var clip = ComponentLoader.LoadTextEncoder(folder);
        var o = clip.Forward(inputs["input_ids"]);
        computed["last_hidden_state"] = o.LastHiddenState;
        computed["pooler_output"] = o.PooledOutput;
        computed["pooled_index"] = o.PooledIndex;
        for (int i = 0; i < o.HiddenStates.Count; i++) computed[$"hidden_states.{i}"] = o.HiddenStates[i];
        computed["penultimate_hidden_state"] = o.HiddenStates[^2];
        computed["clip_skip_1"] = clip.FinalLayerNorm(o.HiddenStates[^2]);
        for (int skip = 2; skip < o.HiddenStates.Count - 1; skip++)
            computed[$"clip_skip_{skip}"] = clip.FinalLayerNorm(o.HiddenStates[^(skip + 1)]);
    }
}
