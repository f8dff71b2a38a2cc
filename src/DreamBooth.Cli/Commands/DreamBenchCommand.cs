using System.CommandLine;
using DreamBooth.TinyWorld;

namespace DreamBooth.Cli.Commands;

/// <summary>`dreambooth tinyworld dreambench`: base model vs DreamBooth without / with prior preservation on the demo subject.</summary>
public static class DreamBenchCommand
{
    public static Command Create()
    {
        var model = new Option<string>("--model") { Description = "Base model.", DefaultValueFactory = _ => CliPaths.DefaultModel };
        var work = new Option<string>("--work") { Description = "Folder for the two training sessions.", DefaultValueFactory = _ => Path.Combine("outputs", "dreambench") };
        var steps = new Option<int?>("--steps") { Description = "DreamBooth steps (default: the quickstart's)." };
        var seeds = new Option<int>("--seeds") { Description = "Seeds per prompt.", DefaultValueFactory = _ => 3 };
        var cmd = new Command("dreambench", "Mini DreamBench: subject fidelity, prompt fidelity and leakage for the base model and DreamBooth without / with prior preservation.")
        {
            model, work, steps, seeds,
        };
        cmd.SetAction(pr =>
        {
            int n = pr.GetValue(seeds);
            if (n < 1) throw new CliException($"--seeds must be ≥ 1 (got {n})");
            var training = new QuickstartOptions { Model = CliPaths.Resolve(pr.GetValue(model)!), InstanceImages = CliPaths.Resolve(Path.Combine("data", "demo-subject")) };
            if (pr.GetValue(steps) is int s) training = training with { Steps = s };
            var options = new DreamBenchOptions { Seeds = Enumerable.Range(0, n).Select(i => 11L * (i + 1)).ToArray() };
            var clock = System.Diagnostics.Stopwatch.StartNew();
            var results = DreamBench.Compare(training, Path.GetFullPath(pr.GetValue(work)!), options,
                progress: new Training.InlineProgress<string>(m => Cli.Err.WriteLine(m)), ct: Cli.Cancellation);
            foreach (var r in results) Cli.Out.WriteLine(r.ToString());
            Cli.Out.WriteLine($"({clock.Elapsed.TotalMinutes:F1} min; subject fidelity = mean SubjectFidelity score of identifier prompts, prompt fidelity = background and position obeyed, leakage = class prompts that draw the subject)");
            return 0;
        });
        return cmd;
    }
}
