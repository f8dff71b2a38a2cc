using DreamBooth.Cli;

namespace DreamBooth.Tests.Cli;

public class ConsoleProgressBarTests
{
    [Fact]
    public void RedirectedOutputPrintsOneLinePerTenPercent()
    {
        var w = new StringWriter();
        var bar = new ConsoleProgressBar(w, "steps", interactive: false);
        for (int i = 0; i <= 1000; i++) bar.Update(i, 1000);
        bar.Finish();
        var lines = w.ToString().Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.Equal(11, lines.Length); // 0 %, 10 %, ..., 100 %
        Assert.StartsWith("steps   0% 0/1000", lines[0]);
        Assert.StartsWith("steps 100% 1000/1000", lines[^1]);
        Assert.DoesNotContain('\r', w.ToString());
    }

    [Fact]
    public void InteractiveOutputRedrawsOneLineInPlace()
    {
        var w = new StringWriter();
        var bar = new ConsoleProgressBar(w, "x", interactive: true);
        bar.Update(1, 4, "a");
        bar.Update(4, 4, "b");
        var text = w.ToString();
        Assert.StartsWith("\rx [######------------------]  25% 1/4", text);
        Assert.Contains("\rx [########################] 100% 4/4", text);
        Assert.EndsWith(Environment.NewLine, text); // finished at 100 %
        Assert.Single(text.Split(Environment.NewLine, StringSplitOptions.RemoveEmptyEntries));
    }
}
