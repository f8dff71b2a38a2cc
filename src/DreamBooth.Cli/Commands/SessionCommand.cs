using System.CommandLine;
using System.Globalization;
using System.Text;
using DreamBooth.Loading;
using DreamBooth.Training;

namespace DreamBooth.Cli.Commands;

/// <summary><c>dreambooth session new|show|list</c>: DreamBooth session folders (images, options, progress, checkpoints).</summary>
public static class SessionCommand
{
    public static Command Create()
    {
        var cmd = new Command("session", "Create, show and list DreamBooth sessions (a folder with session.json, instance_images/, class_images/, checkpoints/).");
        cmd.Subcommands.Add(CreateNew());
        cmd.Subcommands.Add(CreateShow());
        cmd.Subcommands.Add(CreateList());
        return cmd;
    }

    static Command CreateNew()
    {
        var folder = new Argument<string>("folder") { Description = "The new session folder." };
        var model = new Option<string>("--model", "-m") { Description = "Base model: diffusers folder, .safetensors/.ckpt file or hub repo id.", DefaultValueFactory = _ => CliPaths.DefaultModel };
        var identifier = new Option<string>("--identifier") { Description = "Rare token that will name the subject, e.g. llmcbrrrqqdpj (check it with `dreambooth identifier`).", Required = true };
        var cls = new Option<string>("--class") { Description = "What the subject is, in words the model knows: person, dog, star ...", Required = true };
        var resolution = new Option<int?>("--resolution") { Description = "Training resolution (default: the base model's own, read from a diffusers folder's configs — 512 for SD 1.5, 768 for SD 2.1, 64 for the tiny model; 512 for a single file or repo id)." };
        var name = new Option<string?>("--name") { Description = "Concept name (folder name under instance_images/; default: the identifier)." };
        var instancePrompt = new Option<string?>("--instance-prompt") { Description = "Prompt for instance images without a caption (default \"<identifier> <class>\")." };
        var classPrompt = new Option<string?>("--class-prompt") { Description = "Prompt for class images (default \"a <class>\")." };
        var cmd = new Command("new", "Create a session for one subject.") { folder, model, identifier, cls, resolution, name, instancePrompt, classPrompt };
        cmd.SetAction(pr =>
        {
            var baseModel = CliPaths.Resolve(pr.GetValue(model)!);
            var kind = ModelSource.Classify(baseModel); // catches typos now rather than at training time
            if (kind != ModelSourceKind.HubRepo) baseModel = Path.GetFullPath(baseModel);
            var id = pr.GetValue(identifier)!.Trim();
            var concept = new Concept
            {
                Name = pr.GetValue(name) ?? id,
                Identifier = id,
                ClassNoun = pr.GetValue(cls)!.Trim(),
                InstancePrompt = pr.GetValue(instancePrompt),
                ClassPrompt = pr.GetValue(classPrompt),
            };
            var native = pr.GetValue(resolution) is null ? ModelSource.NativeResolution(baseModel) : null;
            var res = pr.GetValue(resolution) ?? native ?? 512;
            var options = new TrainingOptions { Resolution = res };
            var s = DreamBoothSession.Create(pr.GetValue(folder)!, baseModel, [concept], options);
            Cli.Out.WriteLine($"created session '{s.Name}' in {s.Folder}");
            Cli.Out.WriteLine($"  concept {concept.Name}: \"{concept.EffectiveInstancePrompt}\" (class images: \"{concept.EffectiveClassPrompt}\")");
            Cli.Out.WriteLine(pr.GetValue(resolution) is not null ? $"  resolution {res} (--resolution)"
                : native is not null ? $"  resolution {res} (the base model's own; --resolution to change)"
                : $"  resolution {res} (default; pass --resolution 768 for an SD 2.1 768-v model)");
            Cli.Out.WriteLine($"  add photos: dreambooth images add {s.Folder} <files|folders|zips...>");
            return 0;
        });
        return cmd;
    }

    static Command CreateShow()
    {
        var folder = new Argument<string>("folder") { Description = "A session folder." };
        var cmd = new Command("show", "Show a session: concepts, image counts, options, progress and checkpoints.") { folder };
        cmd.SetAction(pr =>
        {
            var s = DreamBoothSession.Load(pr.GetValue(folder)!);
            Cli.Out.Write(Describe(s));
            return 0;
        });
        return cmd;
    }

    static Command CreateList()
    {
        var parent = new Argument<string>("parent") { Description = "The folder that holds session folders.", DefaultValueFactory = _ => "." };
        var cmd = new Command("list", "List the sessions directly below a folder.") { parent };
        cmd.SetAction(pr =>
        {
            var p = pr.GetValue(parent)!;
            if (!Directory.Exists(p)) throw new CliException($"{p}: folder not found (session list takes the folder that holds session folders; default: the current folder)");
            var sessions = DreamBoothSession.List(p);
            if (sessions.Count == 0)
            {
                Cli.Out.WriteLine($"no sessions in {Path.GetFullPath(p)} (create one with `dreambooth session new <folder> --identifier ... --class ...`)");
                return 0;
            }
            Cli.Out.WriteLine($"{"name",-24} {"step",6} {"images",6}  concepts / base model");
            foreach (var s in sessions)
            {
                int images = s.File.Concepts.Sum(c => s.InstanceImages(c).Count);
                var concepts = string.Join(", ", s.File.Concepts.Select(c => $"{c.Identifier} {c.ClassNoun}"));
                Cli.Out.WriteLine($"{s.Name,-24} {s.File.Progress.Step,6} {images,6}  {concepts} / {s.File.BaseModel}");
            }
            return 0;
        });
        return cmd;
    }

    /// <summary>The text of <c>session show</c>.</summary>
    public static string Describe(DreamBoothSession s)
    {
        var inv = CultureInfo.InvariantCulture;
        var f = s.File;
        var o = f.Options;
        var sb = new StringBuilder();
        sb.Append(inv, $"Session {s.Name} ({s.Folder})\n");
        sb.Append(inv, $"  created     {f.Created:yyyy-MM-dd HH:mm} UTC\n");
        sb.Append(inv, $"  base model  {f.BaseModel}\n");
        sb.Append("Concepts:\n");
        foreach (var c in f.Concepts)
        {
            sb.Append(inv, $"  {c.Name}: identifier '{c.Identifier}', class '{c.ClassNoun}'\n");
            sb.Append(inv, $"    instance prompt \"{c.EffectiveInstancePrompt}\", class prompt \"{c.EffectiveClassPrompt}\"\n");
            sb.Append(inv, $"    {s.InstanceImages(c).Count} instance image(s), {s.ClassImages(c).Count} class image(s)\n");
        }
        sb.Append("Options:\n");
        sb.Append(inv, $"  resolution {o.Resolution}, batch {o.BatchSize} x {o.GradientAccumulationSteps} accumulation, seed {o.Seed}\n");
        sb.Append(inv, $"  UNet {o.UnetSteps} steps at lr {o.UnetLearningRate:G3}; text encoder {o.TextEncoderSteps} steps at lr {o.TextEncoderLearningRate:G3}; {o.LrSchedule} schedule\n");
        sb.Append(inv, $"  prior preservation {(o.PriorPreservation ? $"on ({o.NumClassImages} class images, weight {o.PriorLossWeight:G3})" : "off")}\n");
        sb.Append(inv, $"  optimizer {o.Optimizer}, precision {o.Precision}, gradient checkpointing {(o.GradientCheckpointing ? "on" : "off")}");
        sb.Append(o.Lora is { } l ? string.Create(inv, $", LoRA rank {l.Rank} alpha {l.Alpha:G3}\n") : ", full fine-tune\n");
        sb.Append(inv, $"  checkpoint every {o.CheckpointEvery} steps, keep {o.KeepCheckpoints}\n");
        var p = f.Progress;
        sb.Append("Progress:\n");
        sb.Append(inv, $"  step {p.Step} of {o.UnetSteps}{(p.LastCheckpoint is null ? "" : $", last checkpoint {p.LastCheckpoint}")}{(p.Model is null ? "" : $", model {p.Model}")}\n");
        foreach (var r in p.Runs)
            sb.Append(inv, $"  run {r.Started:yyyy-MM-dd HH:mm}: steps {r.FromStep} -> {r.ToStep}, {r.Status}{(r.Note is null ? "" : " (" + r.Note + ")")}\n");
        var checkpoints = CheckpointStore.List(s.CheckpointsFolder);
        sb.Append(inv, $"Checkpoints ({checkpoints.Count}):\n");
        foreach (var (step, folder) in checkpoints)
            sb.Append(inv, $"  step {step,6}  {folder}\n");
        return sb.ToString();
    }
}
