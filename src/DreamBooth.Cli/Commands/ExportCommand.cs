using System.CommandLine;
using DreamBooth.Loading;
using DreamBooth.Training;
using TorchSharp;

namespace DreamBooth.Cli.Commands;

/// <summary>`dreambooth export`: writes a session's trained model as a diffusers folder, an AUTOMATIC1111 single file or a LoRA.</summary>
public static class ExportCommand
{
    public static Command Create()
    {
        var session = new Argument<string>("session") { Description = "The session folder." };
        var format = new Option<string>("--format") { Description = "diffusers, single-file or lora.", DefaultValueFactory = _ => "single-file" };
        var output = new Option<string?>("--out") { Description = "Output folder (diffusers) or .safetensors file. Default: inside the session." };
        var checkpoint = new Option<string?>("--checkpoint") { Description = "Checkpoint folder or step (default: the newest)." };
        var dtype = new Option<string>("--dtype") { Description = "fp16, bf16 or fp32.", DefaultValueFactory = _ => "fp16" };
        var loraFormat = new Option<string>("--lora-format") { Description = "kohya (AUTOMATIC1111) or diffusers.", DefaultValueFactory = _ => "kohya" };
        var cmd = new Command("export", "Export a trained session: diffusers folder, single .safetensors for AUTOMATIC1111, or LoRA.")
        {
            session, format, output, checkpoint, dtype, loraFormat,
        };
        cmd.SetAction(pr =>
        {
            var s = DreamBoothSession.Load(pr.GetValue(session)!);
            var all = CheckpointStore.List(s.CheckpointsFolder);
            if (all.Count == 0) throw new CliException($"session {s.Folder} has no checkpoint yet; train it first with `dreambooth train {s.Folder}`");
            var ckArg = pr.GetValue(checkpoint);
            string ck = ckArg is null ? all[^1].Folder
                : int.TryParse(ckArg, out int step) ? all.FirstOrDefault(c => c.Step == step).Folder
                    ?? throw new CliException($"--checkpoint {step}: no such checkpoint (available: {string.Join(", ", all.Select(c => c.Step))})")
                : Directory.Exists(ckArg) ? ckArg : throw new CliException($"--checkpoint '{ckArg}' is neither a step number nor a folder");
            var dt = pr.GetValue(dtype)!.ToLowerInvariant() switch
            {
                "fp16" or "float16" => torch.ScalarType.Float16,
                "bf16" or "bfloat16" => torch.ScalarType.BFloat16,
                "fp32" or "float32" => torch.ScalarType.Float32,
                var x => throw new CliException($"--dtype must be fp16, bf16 or fp32 (got '{x}')"),
            };
            var fmt = pr.GetValue(format)!.ToLowerInvariant() switch
            {
                "diffusers" => ExportFormat.Diffusers,
                "single-file" or "singlefile" or "safetensors" or "a1111" => ExportFormat.SingleFile,
                "lora" => ExportFormat.Lora,
                var x => throw new CliException($"--format must be diffusers, single-file or lora (got '{x}')"),
            };
            var info = CheckpointStore.ReadInfo(ck);
            if (fmt == ExportFormat.Lora && info.Kind != "lora")
                throw new CliException("--format lora needs a LoRA run (train with --lora-rank); this session trained full weights: use diffusers or single-file");
            using var model = ModelSource.Load(s.File.BaseModel, torch.CPU, torch.ScalarType.Float32);
            var (ul, tl) = ModelExport.ApplyCheckpoint(model, ck);
            var name = $"{s.Name}-step{info.Step}";
            string written;
            switch (fmt)
            {
                case ExportFormat.Lora:
                    var lf = pr.GetValue(loraFormat)!.ToLowerInvariant() switch
                    {
                        "kohya" or "a1111" => LoraFormat.Kohya,
                        "diffusers" or "peft" => LoraFormat.Diffusers,
                        var x => throw new CliException($"--lora-format must be kohya or diffusers (got '{x}')"),
                    };
                    written = ModelExport.ExportLora(pr.GetValue(output) ?? Path.Combine(s.Folder, "exports", name + "-lora.safetensors"), lf, ul!, tl);
                    break;
                case ExportFormat.Diffusers:
                    ul?.MergeIntoBase();
                    tl?.MergeIntoBase();
                    written = ModelExport.ExportDiffusers(model, pr.GetValue(output) ?? Path.Combine(s.Folder, "exports", name), dt);
                    break;
                default:
                    ul?.MergeIntoBase();
                    tl?.MergeIntoBase();
                    written = ModelExport.ExportSingleFile(model, pr.GetValue(output) ?? Path.Combine(s.Folder, "exports", name + ".safetensors"), dt);
                    break;
            }
            ul?.Dispose();
            tl?.Dispose();
            Cli.Out.WriteLine(written);
            return 0;
        });
        return cmd;
    }
}
