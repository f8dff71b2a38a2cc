using System.CommandLine;
using DreamBooth.Loading;

namespace DreamBooth.Cli.Commands;

public static class InspectCommand
{
    public static Command Create()
    {
        var folder = new Argument<string>("model-folder") { Description = "A diffusers model folder (with model_index.json) or one component folder (with config.json)." };
        var cmd = new Command("inspect", "Show a model's components, configs, parameter counts and dtypes (no weights are loaded).") { folder };
        cmd.SetAction(pr =>
        {
            var report = ModelInspector.Inspect(pr.GetValue(folder)!);
            Cli.Out.Write(report.ToText());
            return report.Components.Any(c => c.Problem is not null) ? 1 : 0;
        });
        return cmd;
    }
}
