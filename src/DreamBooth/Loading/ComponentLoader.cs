using DreamBooth.Models.Clip;
using DreamBooth.Models.Common;
using DreamBooth.Models.Unet;
using DreamBooth.Models.Vae;
using TorchSharp;
using static TorchSharp.torch;

namespace DreamBooth.Loading;

/// <summary>
/// Loads one component folder of a diffusers model (<c>unet/</c>, <c>vae/</c>, <c>text_encoder/</c>): config.json →
/// typed config → model on the requested device and dtype → strict weight load. Nothing half-loaded escapes: on any
/// error the model is disposed and a <see cref="ModelLoadException"/> names the file.
/// </summary>
public static class ComponentLoader
{
    static readonly string[] DiffusersWeights = ["diffusion_pytorch_model"];
    static readonly string[] TransformersWeights = ["model", "pytorch_model"];

    public static UNet2DConditionModel LoadUnet(string folder, Device? device = null, ScalarType dtype = ScalarType.Float32, string? variant = null)
    {
        var (configPath, config) = ReadConfig<UNet2DConditionConfig>(folder);
        config.Validate(configPath);
        var weights = FindWeights(folder, DiffusersWeights, variant);
        return Build(() => new UNet2DConditionModel(config, new ModelPlacement(device ?? torch.CPU, dtype)), weights, null, null);
    }

    public static AutoencoderKL LoadVae(string folder, Device? device = null, ScalarType dtype = ScalarType.Float32, string? variant = null)
    {
        var (configPath, config) = ReadConfig<AutoencoderKLConfig>(folder);
        config.Validate(configPath);
        var weights = FindWeights(folder, DiffusersWeights, variant);
        return Build(() => new AutoencoderKL(config, new ModelPlacement(device ?? torch.CPU, dtype)), weights, RenameLegacyVaeAttention, null);
    }

    public static ClipTextModel LoadTextEncoder(string folder, Device? device = null, ScalarType dtype = ScalarType.Float32, string? variant = null)
    {
        var (configPath, config) = ReadConfig<ClipTextConfig>(folder);
        config.Validate(configPath);
        var weights = FindWeights(folder, TransformersWeights, variant);
        return Build(() => new ClipTextModel(config, new ModelPlacement(device ?? torch.CPU, dtype)), weights, null,
            k => k == "text_model.embeddings.position_ids");
    }

    /// <summary>Reads <c>config.json</c> of a component folder with a clear error when the folder or file is missing.</summary>
    public static (string Path, T Config) ReadConfig<T>(string folder) where T : class
    {
        if (!Directory.Exists(folder))
            throw new ModelLoadException(folder, "component folder not found");
        var path = Path.Combine(folder, "config.json");
        if (!File.Exists(path))
            throw new ModelLoadException(path, "config.json is missing: this folder is not a diffusers/transformers model component");
        return (path, Models.Common.ConfigJson.Read<T>(path));
    }

    /// <summary>
    /// The weight file of a component: <c>{name}.{variant}.safetensors</c> when a variant (e.g. fp16) is asked for, else
    /// <c>{name}.safetensors</c>, a sharded index, or a <c>.bin</c> pickle; a lone fp16 variant is used when nothing else exists.
    /// </summary>
    public static string FindWeights(string folder, IReadOnlyList<string> names, string? variant)
    {
        var candidates = new List<string>();
        foreach (var n in names)
        {
            if (variant is not null)
            {
                candidates.Add($"{n}.{variant}.safetensors");
                candidates.Add($"{n}.safetensors.index.{variant}.json");
                candidates.Add($"{n}.{variant}.bin");
            }
            candidates.Add($"{n}.safetensors");
            candidates.Add($"{n}.safetensors.index.json");
            candidates.Add($"{n}.bin");
            candidates.Add($"{n}.bin.index.json");
            candidates.Add($"{n}.fp16.safetensors");
            candidates.Add($"{n}.fp16.bin");
        }
        foreach (var c in candidates)
        {
            var p = Path.Combine(folder, c);
            if (File.Exists(p)) return p;
        }
        throw new ModelLoadException(folder, $"no weight file found (looked for {string.Join(", ", candidates.Distinct().Take(6))} …)");
    }

    static TModel Build<TModel>(Func<TModel> create, string weightsPath, Func<Dictionary<string, Tensor>, Dictionary<string, Tensor>>? transform,
        Func<string, bool>? ignore) where TModel : nn.Module
    {
        var state = StateDicts.Load(weightsPath);
        TModel? model = null;
        try
        {
            if (transform is not null) state = transform(state);
            model = create();
            StateDicts.LoadStrict(model, state, weightsPath, ignore);
            model.eval();
            return model;
        }
        catch
        {
            model?.Dispose();
            throw;
        }
        finally
        {
            foreach (var t in state.Values) t.Dispose();
        }
    }

    /// <summary>
    /// VAE weights saved before diffusers' attention refactor name the mid-block attention <c>query/key/value/proj_attn</c>
    /// (and single-file conversions keep 1×1 conv shapes); map them to <c>to_q/to_k/to_v/to_out.0</c> Linear weights.
    /// </summary>
    public static Dictionary<string, Tensor> RenameLegacyVaeAttention(Dictionary<string, Tensor> state)
    {
        var result = new Dictionary<string, Tensor>(StringComparer.Ordinal);
        foreach (var (k, v) in state)
        {
            var key = k;
            var t = v;
            if (k.Contains(".attentions.", StringComparison.Ordinal))
            {
                key = k.Replace(".query.", ".to_q.", StringComparison.Ordinal)
                       .Replace(".key.", ".to_k.", StringComparison.Ordinal)
                       .Replace(".value.", ".to_v.", StringComparison.Ordinal)
                       .Replace(".proj_attn.", ".to_out.0.", StringComparison.Ordinal);
                if (t.dim() == 4 && t.shape[2] == 1 && t.shape[3] == 1 && (key.Contains(".to_", StringComparison.Ordinal)))
                {
                    t = t.reshape(t.shape[0], t.shape[1]);
                    v.Dispose();
                }
            }
            result[key] = t;
        }
        return result;
    }
}
