using DreamBooth.Loading;
using DreamBooth.Tests.Infrastructure;
using DreamBooth.Training;

namespace DreamBooth.Tests.Training;

public class SessionTests
{
    static readonly Concept Subject = new() { Name = "zwx", Identifier = "zwx", ClassNoun = "star" };

    [Fact]
    public void CreateLoadListKeepsImagesAndProgress()
    {
        using var dir = TestPaths.NewTempDir();
        var folder = Path.Combine(dir.Path, "my-session");
        var s = DreamBoothSession.Create(folder, "data/models/tiny-sd", [Subject], new TrainingOptions { Resolution = 64, UnetSteps = 10 });
        Assert.True(Directory.Exists(s.InstanceFolder(Subject)));
        Assert.True(Directory.Exists(s.CheckpointsFolder));
        File.WriteAllBytes(Path.Combine(s.InstanceFolder(Subject), "a.png"), [1, 2, 3]);
        s.Update(f => f with { Progress = f.Progress with { Step = 5, LastCheckpoint = "checkpoints/step-000005" } });

        var again = DreamBoothSession.Load(folder);
        Assert.Equal(5, again.File.Progress.Step);
        Assert.Equal(64, again.File.Options.Resolution);
        Assert.Equal("zwx star", again.File.Concepts[0].EffectiveInstancePrompt);
        Assert.Single(again.InstanceImages(again.File.Concepts[0]));
        Assert.Equal([1, 2, 3], File.ReadAllBytes(Path.Combine(s.InstanceFolder(Subject), "a.png")));
        Assert.Single(DreamBoothSession.List(dir.Path));
        var ex = Assert.Throws<InvalidOperationException>(() => DreamBoothSession.Create(folder, "x", [Subject]));
        Assert.Contains("already exists", ex.Message);
    }

    [Fact]
    public void LoadingSomethingElseGivesClearErrors()
    {
        using var dir = TestPaths.NewTempDir();
        var e = Assert.Throws<ModelLoadException>(() => DreamBoothSession.Load(dir.Path));
        Assert.Contains("not a DreamBooth session", e.Message);
        File.WriteAllText(Path.Combine(dir.Path, "session.json"), "{ not json");
        e = Assert.Throws<ModelLoadException>(() => DreamBoothSession.Load(dir.Path));
        Assert.Contains("session.json is not valid", e.Message);
    }

    [Fact]
    public void BadOptionsNameTheOption()
    {
        using var dir = TestPaths.NewTempDir();
        var e = Assert.Throws<ArgumentException>(() => DreamBoothSession.Create(dir.File("s"), "m", [Subject], new TrainingOptions { Resolution = 500 }));
        Assert.Contains("Resolution", e.Message);
        Assert.Contains("multiple of 8", e.Message);
        e = Assert.Throws<ArgumentException>(() => DreamBoothSession.Create(dir.File("s"), "m", [Subject with { Name = "a/b" }]));
        Assert.Contains("Concept.Name", e.Message);
    }

    [Fact]
    public void SecondTrainerCannotLockTheSession()
    {
        using var dir = TestPaths.NewTempDir();
        var s = DreamBoothSession.Create(dir.File("s"), "m", [Subject]);
        using (s.Lock())
        {
            var e = Assert.Throws<SessionBusyException>(() => s.Lock());
            Assert.Contains($"process {Environment.ProcessId}", e.Message);
        }
        using var again = s.Lock(); // released
    }
}
