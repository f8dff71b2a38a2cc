using System.CommandLine;
using DreamBooth.Imaging;
using DreamBooth.Pipelines;
using DreamBooth.Training;

namespace DreamBooth.Cli.Commands;

/// <summary><c>dreambooth generate</c>: text-to-image / image-to-image, PNGs with AUTOMATIC1111 "parameters" metadata.</summary>
public static class GenerateCommand
{
    public static Command Create()
    {
        var o = new GenerationOptions();
        var cmd = new Command("generate", "Generate images from a prompt (or from --init-image) and save them as PNGs with their parameters.");
        o.AddTo(cmd);
        cmd.SetAction(pr =>
        {
            var request = o.BuildRequest(pr);
            var outDir = pr.GetValue(o.Out)!;
            using var loaded = o.LoadModel(pr);
            SixLabors.ImageSharp.Image<SixLabors.ImageSharp.PixelFormats.Rgb24>? init = null;
            try
            {
                if (pr.GetValue(o.InitImage) is { } initPath)
                {
                    var (img, w, h) = GenerationOptions.LoadInitImage(initPath, request.Width, request.Height);
                    init = img;
                    request = request with { InitImage = img, Width = w, Height = h };
                }
                var pipe = new StableDiffusionPipeline(loaded.Model);
                var bar = ConsoleProgressBar.ForStderr("sampling");
                using var result = pipe.Generate(request, new InlineProgress<GenerationProgress>(p => bar.Update(p.Step, p.TotalSteps)), Cli.Cancellation);
                bar.Finish();
                var extra = o.ExtraParameters(pr);
                var images = result.ToImages();
                try
                {
                    for (int i = 0; i < images.Count; i++)
                    {
                        var parameters = result.Parameters[i] with { Extra = [.. result.Parameters[i].Extra, .. extra] };
                        var path = OutputFiles.Reserve(outDir, result.Seeds[i]);
                        PngInfo.Save(images[i], path, parameters);
                        Cli.Out.WriteLine(Path.GetFullPath(path));
                    }
                }
                finally
                {
                    foreach (var im in images) im.Dispose();
                }
            }
            finally
            {
                init?.Dispose();
            }
            return 0;
        });
        return cmd;
    }
}
