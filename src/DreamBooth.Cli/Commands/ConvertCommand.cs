using System.CommandLine;
using System.Text.Json.Nodes;
using DreamBooth.Loading;
using DreamBooth.Loading.SingleFile;
using TorchSharp;
using static TorchSharp.torch;
using DreamBooth.Sampling;

namespace DreamBooth.Cli.Commands;

/// <summary>
/// <c>dreambooth convert</c>: a diffusers folder (or hub id) to one single-file <c>.safetensors</c> in the CompVis/LDM layout
/// (what AUTOMATIC1111 and ComfyUI load), or a single file to a diffusers folder. Weights are loaded strictly first, so a
/// conversion never writes a model that does not load.
/// </summary>
public static class ConvertCommand
{
    public static Command Create()
    {
        var input = new Argument<string>("in") { Description = "Diffusers folder, .safetensors/.ckpt single file, or hub repo id." };
        var output = new Argument<string>("out") { Description = "A .safetensors file name (single file) or a new folder (diffusers layout)." };
        var dtype = new Option<string>("--dtype") { Description = "Precision of the written weights: fp32, fp16 or bf16.", DefaultValueFactory = _ => "fp32" };
        var tokenizer = new Option<string?>("--tokenizer") { Description = "Single-file input: tokenizer folder (vocab.json + merges.txt) to copy into the diffusers folder." };
        var config = new Option<string?>("--config") { Description = "Single-file input: a diffusers folder of the same family (configs, tokenizer, scheduler)." };
        var prediction = new Option<string?>("--prediction-type") { Description = "Single SD 2.x files that do not say: epsilon or v." };
        var cmd = new Command("convert", "Convert between a diffusers folder and a single .safetensors checkpoint (LDM layout).") { input, output, dtype, tokenizer, config, prediction };
        cmd.SetAction(pr =>
        {
            var src = pr.GetValue(input)!;
            var dst = pr.GetValue(output)!;
            var st = GenerationOptions.ParseDType(pr.GetValue(dtype)!) switch
            {
                DTypeChoice.Fp16 => ScalarType.Float16,
                DTypeChoice.Bf16 => ScalarType.BFloat16,
                _ => ScalarType.Float32,
            };
            var sf = new SingleFileOptions();
            if (pr.GetValue(prediction) is { } p)
                sf = sf with
                {
                    PredictionType = Cli.ParsePredictionType(p, "--prediction-type"),
                };
            var options = new ModelSourceOptions
            {
                TokenizerFolder = pr.GetValue(tokenizer),
                ConfigFolder = pr.GetValue(config),
                SingleFile = sf,
                Log = l => Cli.Err.WriteLine(l),
                DownloadProgress = DownloadCommand.ProgressPrinter(),
            };
            bool toSingle = dst.EndsWith(".safetensors", StringComparison.OrdinalIgnoreCase);
            if (!toSingle && (dst.EndsWith(".ckpt", StringComparison.OrdinalIgnoreCase) || dst.EndsWith(".pt", StringComparison.OrdinalIgnoreCase)))
                throw new CliException($"{dst}: single files are written as .safetensors only (a pickled .ckpt can run code when loaded); use a .safetensors name");
            if (File.Exists(dst) || (Directory.Exists(dst) && Directory.EnumerateFileSystemEntries(dst).Any()))
                throw new CliException($"{dst} already exists; choose a new {(toSingle ? "file" : "folder")} name (convert never overwrites)");
            var kind = ModelSource.Classify(src);
            Cli.Err.WriteLine($"loading {src} ...");
            using var model = ModelSource.Load(src, torch.CPU, ScalarType.Float32, options, Cli.Cancellation);
            if (toSingle) WriteSingleFile(model, dst, st);
            else WriteDiffusers(model, dst, st, kind == ModelSourceKind.SingleFile ? null : Path.GetFullPath(kind == ModelSourceKind.DiffusersFolder ? src : model.Source), options.ConfigFolder);
            Cli.Out.WriteLine(Path.GetFullPath(dst));
            return 0;
        });
        return cmd;
    }

    /// <summary>SD 2.x's OpenCLIP text encoder uses gelu, SD 1.x's CLIP-L quick_gelu.</summary>
    public static SdVariant VariantOf(StableDiffusionModel model) =>
        model.TextEncoder.Config.HiddenAct == "gelu" ? SdVariant.Sd2 : SdVariant.Sd1;

    /// <summary>Writes the model as one LDM-layout .safetensors (atomically).</summary>
    public static void WriteSingleFile(StableDiffusionModel model, string path, ScalarType dtype)
    {
        var dir = Path.GetDirectoryName(Path.GetFullPath(path));
        if (dir is not null) Directory.CreateDirectory(dir);
        using var scope = torch.NewDisposeScope();
        SingleFileCheckpoint.Write(path, model.Unet.state_dict(), model.Vae.state_dict(), model.TextEncoder.state_dict(), VariantOf(model), dtype);
    }

    /// <summary>
    /// Writes a diffusers folder: model_index.json, unet/vae/text_encoder configs and safetensors, tokenizer files and the
    /// scheduler config. Written to a temporary folder first and renamed, so a failure leaves nothing half-written.
    /// </summary>
    public static void WriteDiffusers(StableDiffusionModel model, string folder, ScalarType dtype, string? sourceFolder, string? configFolder)
    {
        folder = Path.GetFullPath(folder);
        var parent = Path.GetDirectoryName(folder)!;
        Directory.CreateDirectory(parent);
        var tmp = Path.Combine(parent, $".{Path.GetFileName(folder)}.tmp-{Guid.NewGuid():N}");
        try
        {
            Directory.CreateDirectory(tmp);
            var variant = VariantOf(model);
            WriteComponent(Path.Combine(tmp, "unet"), Models.Common.ConfigJson.Serialize(model.Unet.Config), "diffusion_pytorch_model.safetensors", model.Unet, dtype);
            WriteComponent(Path.Combine(tmp, "vae"), Models.Common.ConfigJson.Serialize(model.Vae.Config), "diffusion_pytorch_model.safetensors", model.Vae, dtype);
            WriteComponent(Path.Combine(tmp, "text_encoder"), Models.Common.ConfigJson.Serialize(model.TextEncoder.Config), "model.safetensors", model.TextEncoder, dtype);

            var tokDir = Directory.CreateDirectory(Path.Combine(tmp, "tokenizer")).FullName;
            var tokSource = model.Tokenizer.Source;
            if (!File.Exists(Path.Combine(tokSource, "vocab.json")))
                throw new CliException($"the tokenizer files of {tokSource} were not found to copy");
            foreach (var f in new[] { "vocab.json", "merges.txt", "special_tokens_map.json", "tokenizer_config.json" })
                if (File.Exists(Path.Combine(tokSource, f))) File.Copy(Path.Combine(tokSource, f), Path.Combine(tokDir, f));

            var schedDir = Directory.CreateDirectory(Path.Combine(tmp, "scheduler")).FullName;
            var existing = new[] { sourceFolder, configFolder }.Where(f => f is not null)
                .Select(f => Path.Combine(f!, "scheduler", "scheduler_config.json")).FirstOrDefault(File.Exists);
            if (existing is not null) File.Copy(existing, Path.Combine(schedDir, "scheduler_config.json"));
            else
            {
                var prediction = model.Scheduler.PredictionType == Sampling.PredictionType.VPrediction ? PredictionType.VPrediction : PredictionType.Epsilon;
                File.WriteAllText(Path.Combine(schedDir, "scheduler_config.json"), SdConfigInference.Scheduler(variant, prediction).ToJsonString(new() { WriteIndented = true }) + "\n");
            }

            var index = new JsonObject
            {
                ["_class_name"] = "StableDiffusionPipeline",
                ["_diffusers_version"] = "0.30.3",
                ["feature_extractor"] = new JsonArray(null, null),
                ["requires_safety_checker"] = false,
                ["safety_checker"] = new JsonArray(null, null),
                ["scheduler"] = new JsonArray("diffusers", variant == SdVariant.Sd1 ? "PNDMScheduler" : "DDIMScheduler"),
                ["text_encoder"] = new JsonArray("transformers", "CLIPTextModel"),
                ["tokenizer"] = new JsonArray("transformers", "CLIPTokenizer"),
                ["unet"] = new JsonArray("diffusers", "UNet2DConditionModel"),
                ["vae"] = new JsonArray("diffusers", "AutoencoderKL"),
            };
            File.WriteAllText(Path.Combine(tmp, "model_index.json"), index.ToJsonString(new() { WriteIndented = true }) + "\n");
            if (Directory.Exists(folder)) Directory.Delete(folder); // empty (checked by the caller)
            Directory.Move(tmp, folder);
        }
        catch
        {
            try { Directory.Delete(tmp, true); } catch (IOException) { } catch (UnauthorizedAccessException) { }
            throw;
        }
    }

    static void WriteComponent(string dir, string configJson, string weightsName, nn.Module module, ScalarType dtype)
    {
        Directory.CreateDirectory(dir);
        File.WriteAllText(Path.Combine(dir, "config.json"), configJson + "\n");
        using var scope = torch.NewDisposeScope();
        var state = new Dictionary<string, Tensor>(StringComparer.Ordinal);
        foreach (var (k, t) in module.state_dict())
        {
            var c = t.detach().cpu();
            if (c.is_floating_point() && c.dtype != dtype) c = c.to(dtype);
            state[k] = c.contiguous();
        }
        Safetensors.Save(Path.Combine(dir, weightsName), state, new Dictionary<string, string> { ["format"] = "pt" });
    }
}
