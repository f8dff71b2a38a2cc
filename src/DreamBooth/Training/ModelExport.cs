using System.Text.Json.Nodes;
using DreamBooth.Loading;
using DreamBooth.Loading.SingleFile;
using DreamBooth.Models.Common;
using TorchSharp;
using static TorchSharp.torch;


namespace DreamBooth.Training;

/// <summary>Export formats of a trained model.</summary>
public enum ExportFormat
{
    /// <summary>A diffusers folder (model_index.json, unet/, vae/, text_encoder/, tokenizer/, scheduler/).</summary>
    Diffusers,
    /// <summary>One <c>.safetensors</c> in the original Stable Diffusion key layout (what AUTOMATIC1111 loads).</summary>
    SingleFile,
    /// <summary>LoRA adapters only (kohya / AUTOMATIC1111 format, or diffusers format).</summary>
    Lora,
}

/// <summary>Writes trained models as diffusers folders, single files for AUTOMATIC1111, or LoRA files. All writes are atomic.</summary>
public static class ModelExport
{
    /// <summary>Writes <paramref name="model"/> as a diffusers folder (written beside, then renamed into place).</summary>
    public static string ExportDiffusers(StableDiffusionModel model, string outFolder, ScalarType dtype = ScalarType.Float16)
    {
        CheckDtype(dtype);
        outFolder = Path.GetFullPath(outFolder);
        if (File.Exists(outFolder)) throw new ArgumentException($"{outFolder} is a file; give a folder for a diffusers export", nameof(outFolder));
        var parent = Path.GetDirectoryName(outFolder)!;
        Directory.CreateDirectory(parent);
        var tmp = Path.Combine(parent, $".{Path.GetFileName(outFolder)}.{Guid.NewGuid():N}.tmp");
        try
        {
            string weights = dtype == ScalarType.Float16 ? "fp16" : dtype == ScalarType.BFloat16 ? "bf16" : "fp32";
            WriteComponent(Path.Combine(tmp, "unet"), "diffusion_pytorch_model.safetensors", model.Unet, model.Unet.Config, dtype);
            WriteComponent(Path.Combine(tmp, "vae"), "diffusion_pytorch_model.safetensors", model.Vae, model.Vae.Config, dtype);
            WriteComponent(Path.Combine(tmp, "text_encoder"), "model.safetensors", model.TextEncoder, model.TextEncoder.Config with { TorchDType = weights == "fp16" ? "float16" : weights == "bf16" ? "bfloat16" : "float32" }, dtype);
            var tok = Path.Combine(tmp, "tokenizer");
            Directory.CreateDirectory(tok);
            foreach (var f in new[] { "vocab.json", "merges.txt", "tokenizer_config.json", "special_tokens_map.json" })
            {
                var src = Path.Combine(model.Tokenizer.Source, f);
                if (File.Exists(src)) File.Copy(src, Path.Combine(tok, f));
            }
            var sched = Path.Combine(tmp, "scheduler");
            Directory.CreateDirectory(sched);
            var schedSrc = Path.Combine(model.Source, "scheduler", "scheduler_config.json");
            if (File.Exists(schedSrc)) File.Copy(schedSrc, Path.Combine(sched, "scheduler_config.json"));
            else AtomicFile.WriteAllText(Path.Combine(sched, "scheduler_config.json"), System.Text.Json.JsonSerializer.Serialize(model.Scheduler, ConfigJson.Options));
            var index = new JsonObject
            {
                ["_class_name"] = "StableDiffusionPipeline",
                ["_diffusers_version"] = "0.27.2",
                ["feature_extractor"] = new JsonArray(null, null),
                ["requires_safety_checker"] = false,
                ["safety_checker"] = new JsonArray(null, null),
                ["scheduler"] = new JsonArray("diffusers", model.Scheduler.ClassName ?? "PNDMScheduler"),
                ["text_encoder"] = new JsonArray("transformers", "CLIPTextModel"),
                ["tokenizer"] = new JsonArray("transformers", "CLIPTokenizer"),
                ["unet"] = new JsonArray("diffusers", "UNet2DConditionModel"),
                ["vae"] = new JsonArray("diffusers", "AutoencoderKL"),
            };
            AtomicFile.WriteAllText(Path.Combine(tmp, "model_index.json"), index.ToJsonString(new System.Text.Json.JsonSerializerOptions { WriteIndented = true }) + "\n");
            if (Directory.Exists(outFolder))
            {
                var old = outFolder + $".old-{Guid.NewGuid():N}";
                Directory.Move(outFolder, old);
                Directory.Move(tmp, outFolder);
                Directory.Delete(old, true);
            }
            else Directory.Move(tmp, outFolder);
            return outFolder;
        }
        catch
        {
            if (Directory.Exists(tmp)) Directory.Delete(tmp, true);
            throw;
        }
    }

    /// <summary>Writes one AUTOMATIC1111-loadable <c>.safetensors</c> (original SD key layout).</summary>
    public static string ExportSingleFile(StableDiffusionModel model, string outFile, ScalarType dtype = ScalarType.Float16)
    {
        CheckDtype(dtype);
        var variant = model.TextEncoder.Config.HiddenAct == "gelu" && model.Unet.Config.UseLinearProjection ? SdVariant.Sd2 : SdVariant.Sd1;
        SingleFileCheckpoint.Write(Path.GetFullPath(outFile), model.Unet.state_dict(), model.Vae.state_dict(), model.TextEncoder.state_dict(), variant, dtype);
        return Path.GetFullPath(outFile);
    }

    /// <summary>Writes LoRA adapters (AUTOMATIC1111 reads the kohya format).</summary>
    public static string ExportLora(string outFile, LoraFormat format, LoraNetwork unet, LoraNetwork? textEncoder = null)
    {
        var nets = textEncoder is null ? new[] { unet } : new[] { unet, textEncoder };
        LoraFiles.Save(Path.GetFullPath(outFile), format, nets);
        return Path.GetFullPath(outFile);
    }

    /// <summary>
    /// Applies a training checkpoint's weights to a freshly loaded base model: full weights are copied in; LoRA
    /// adapters are attached and returned (merge them with <see cref="LoraNetwork.MergeIntoBase"/> for a full export).
    /// </summary>
    public static (LoraNetwork? Unet, LoraNetwork? TextEncoder) ApplyCheckpoint(StableDiffusionModel model, string checkpointFolder)
    {
        using var ck = CheckpointStore.Load(checkpointFolder);
        using var _ = torch.no_grad();
        if (ck.Info.Kind == "lora")
        {
            LoraNetwork? Attach(nn.Module m, string prefix)
            {
                var w = ck.Weights.Where(kv => kv.Key.StartsWith(prefix + ".", StringComparison.Ordinal) && kv.Key.EndsWith(".lora_down", StringComparison.Ordinal))
                    .ToDictionary(kv => kv.Key[(prefix.Length + 1)..^".lora_down".Length],
                                  kv => (kv.Value, ck.Weights[kv.Key[..^"lora_down".Length] + "lora_up"], ck.Info.Options.Lora?.Alpha ?? kv.Value.shape[0]));
                return w.Count == 0 ? null : LoraNetwork.AttachWeights(m, prefix, w.ToDictionary(kv => kv.Key, kv => ((Tensor, Tensor, double))kv.Value), 1.0, checkpointFolder);
            }
            return (Attach(model.Unet, "unet"), Attach(model.TextEncoder, "text_encoder"));
        }
        var u = ck.Weights.Where(kv => kv.Key.StartsWith("unet.", StringComparison.Ordinal)).ToDictionary(kv => kv.Key[5..], kv => kv.Value);
        StateDicts.LoadStrict(model.Unet, u, checkpointFolder);
        var t = ck.Weights.Where(kv => kv.Key.StartsWith("text_encoder.", StringComparison.Ordinal)).ToDictionary(kv => kv.Key[13..], kv => kv.Value);
        if (t.Count > 0) StateDicts.LoadStrict(model.TextEncoder, t, checkpointFolder);
        return (null, null);
    }

    static void WriteComponent<TConfig>(string folder, string file, nn.Module module, TConfig config, ScalarType dtype)
    {
        Directory.CreateDirectory(folder);
        ConfigJson.Write(Path.Combine(folder, "config.json"), config);
        using var scope = torch.NewDisposeScope();
        var state = module.state_dict().ToDictionary(kv => kv.Key, kv => kv.Value.is_floating_point() ? kv.Value.detach().to(dtype).cpu() : kv.Value.detach().cpu());
        Safetensors.Save(Path.Combine(folder, file), state, new Dictionary<string, string> { ["format"] = "pt" });
    }

    static void CheckDtype(ScalarType dtype)
    {
        if (dtype is not (ScalarType.Float16 or ScalarType.Float32 or ScalarType.BFloat16))
            throw new ArgumentException($"export dtype must be fp16, bf16 or fp32 (got {dtype})", nameof(dtype));
    }
}
