using System.CommandLine;
using DreamBooth.Imaging.Import;
using DreamBooth.Training;

namespace DreamBooth.Cli.Commands;

/// <summary><c>dreambooth images add</c>: imports instance photos into a session (square crop, checks, captions).</summary>
public static class ImagesCommand
{
    public static Command Create()
    {
        var cmd = new Command("images", "Manage a session's instance images.");
        cmd.Subcommands.Add(CreateAdd());
        return cmd;
    }

    static Command CreateAdd()
    {
        var session = new Argument<string>("session") { Description = "The session folder." };
        var paths = new Argument<string[]>("paths") { Description = "Image files, folders (their top-level files) or .zip archives; a name.txt beside an image is its caption, a name-masklabel.png its subject mask (for train --masked-loss).", Arity = ArgumentArity.OneOrMore };
        var concept = new Option<string?>("--concept") { Description = "Concept name (default: the session's only concept)." };
        var crop = new Option<string>("--crop") { Description = "center, or smart (the most detailed square window).", DefaultValueFactory = _ => "smart" };
        var caption = new Option<string>("--caption-mode") { Description = "sidecar (a .txt beside the image, else the file name), filename, or prompt (--instance-prompt for all).", DefaultValueFactory = _ => "sidecar" };
        var instancePrompt = new Option<string?>("--instance-prompt") { Description = "Caption for every image with --caption-mode prompt (default: the concept's instance prompt)." };
        var cmd = new Command("add", "Import photos into a session: square crop at the session resolution, checks (blur, size, duplicates), captions, and a steps recommendation.")
        {
            session, paths, concept, crop, caption, instancePrompt,
        };
        cmd.SetAction(pr =>
        {
            var s = DreamBoothSession.Load(pr.GetValue(session)!);
            var c = pr.GetValue(concept) is { } name ? s.Concept(name)
                : s.File.Concepts.Count == 1 ? s.File.Concepts[0]
                : throw new CliException($"session '{s.Name}' has {s.File.Concepts.Count} concepts; choose one with --concept ({string.Join(", ", s.File.Concepts.Select(x => x.Name))})");
            var cropMode = pr.GetValue(crop)!.Trim().ToLowerInvariant() switch
            {
                "center" or "centre" => CropMode.Center,
                "smart" => CropMode.Smart,
                var other => throw new CliException($"--crop '{other}': use center or smart"),
            };
            var captionMode = pr.GetValue(caption)!.Trim().ToLowerInvariant() switch
            {
                "sidecar" or "sidecar-or-filename" => CaptionMode.SidecarOrFileName,
                "filename" or "file-name" => CaptionMode.FileName,
                "prompt" or "instance-prompt" => CaptionMode.InstancePrompt,
                var other => throw new CliException($"--caption-mode '{other}': use sidecar, filename or prompt"),
            };
            var options = new ImportOptions
            {
                Resolution = s.File.Options.Resolution,
                CropMode = cropMode,
                CaptionMode = captionMode,
                InstancePrompt = pr.GetValue(instancePrompt) ?? c.EffectiveInstancePrompt,
            };
            var importer = new InstanceImageImporter(options);
            var bar = ConsoleProgressBar.ForStderr("importing");
            var report = importer.Import(pr.GetValue(paths)!, s.InstanceFolder(c),
                new InlineProgress<ImportProgress>(p => bar.Update(p.Completed, p.Total, p.CurrentFile.Length == 0 ? null : Path.GetFileName(p.CurrentFile))),
                Cli.Cancellation);
            bar.Finish();
            Cli.Out.Write(report.ToText());
            Cli.Out.WriteLine($"{s.InstanceImages(c).Count} instance image(s) now in {s.InstanceFolder(c)}");
            return report.Summary.Imported > 0 ? 0 : 1;
        });
        return cmd;
    }
}
